"""Clients of a Wazuh manager's API and of its indexer, on plain requests.

Facts they rely on (Wazuh 4.x API spec, api/api/spec/spec.yaml):
- `POST /security/user/authenticate` with Basic auth answers `{"data": {"token": JWT}}`;
  the token lasts `auth_token_exp_timeout` (900 s by default). Every other call sends
  `Authorization: Bearer <JWT>`. The client reads `exp` from the token's payload (or
  assumes 900 s), logs in again shortly before it, and on a 401 logs in again ONCE and
  repeats the call; a second 401 is an error.
- Lists answer `{"data": {"affected_items", "total_affected_items", "total_failed_items",
  "failed_items"}, "message", "error"}`; `GET /agents` pages with `offset` and `limit`
  (default 500). The manager's own agent "000" is in the list unless the query language's
  `q` leaves it out (`EXCEPT_MANAGER`, `id!=000`: `=`, `!=`, `<`, `>`, `~` on a field,
  `;` for AND, `,` for OR; a malformed query is a 400, error 1407).
- `DELETE /agents` requires `agents_list` and `status`; `older_than` defaults to 7d (an
  agent seen or registered more recently is not deleted), so the portal sends `0s`.
  There is no delete by id path: resolve the id by name first (`agent_by_name`).
- The indexer is OpenSearch: `POST /wazuh-alerts-*/_search` with Basic auth; an alert's
  document holds `timestamp`, `rule.{id,level,description,groups}`, `agent.{id,name}` and
  the agent's labels (`agent.labels`), if it has any.

Errors are the portal's (portal/errors.py): `WazuhUnavailable` (unreachable, 5xx, 429:
worth retrying) and `WazuhError` (a refusal: 4xx, TLS, a bad answer), `WazuhAuthFailed`
for credentials refused. No message ever holds a password or a token; nothing here logs.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.utils.dateparse import parse_datetime

from portal.errors import ErrorCode, UpstreamError, UpstreamUnavailable

if TYPE_CHECKING:
    from .models import WazuhManager

TOKEN_LIFETIME = 900.0  # seconds: Wazuh's auth_token_exp_timeout default
RENEW_MARGIN = 30.0  # seconds before `exp` a token is renewed (at most a tenth of its life)
ALERTS_INDEX = "wazuh-alerts-*"
# DELETE /agents: every status, however recent: the portal deletes what it names.
DELETE_STATUS = "all"
DELETE_OLDER_THAN = "0s"
MANAGER_AGENT_ID = "000"  # the manager's own agent: listed by GET /agents, never deletable
EXCEPT_MANAGER = f"id!={MANAGER_AGENT_ID}"  # `q` of a list that leaves the manager out


# -- errors ---------------------------------------------------------------------------------
class WazuhError(UpstreamError):
    """The manager or the indexer refused a call for good (4xx, TLS, a bad answer).
    `status` is the HTTP status (0: none), `service` "manager" or "indexer"."""

    code = ErrorCode.WAZUH_ERROR

    def __init__(
        self, message: str, *, status: int = 0, service: str = "manager", **extra: Any
    ) -> None:
        super().__init__(message, **extra)
        self.status = status
        self.service = service


class WazuhAuthFailed(WazuhError):
    """The user and password were refused: an operator must fix them in the admin."""

    code = ErrorCode.WAZUH_AUTH_FAILED


class WazuhUnavailable(UpstreamUnavailable):
    """The manager or the indexer cannot be reached or is busy (a refused or timed-out
    connection, 5xx, 429): worth retrying later."""

    code = ErrorCode.WAZUH_UNAVAILABLE

    def __init__(
        self, message: str, *, status: int = 0, service: str = "manager", **extra: Any
    ) -> None:
        super().__init__(message, **extra)
        self.status = status
        self.service = service


# -- the manager's API ----------------------------------------------------------------------
@dataclass(frozen=True)
class DeleteResult:
    """What `DELETE /agents` did: the ids deleted, and the manager's failed items as it
    gives them (`{"error": {"code", "message", ...}, "id": [ids]}`)."""

    affected: list[str]
    failed: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failed_ids(self) -> list[str]:
        return [str(i) for item in self.failed for i in item.get("id", [])]


def _jwt_expiry(token: str, now: float) -> float:
    """The token's `exp` (epoch seconds), read without checking the signature (the manager
    checks it); `now + TOKEN_LIFETIME` when the payload cannot be read."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"])
    except (IndexError, ValueError, KeyError, TypeError, binascii.Error):
        return now + TOKEN_LIFETIME


def _where(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc.rsplit("@", 1)[-1] or url


def _body(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _reason(response: requests.Response) -> str:
    """The short reason of a refusal, from Wazuh's or OpenSearch's error body."""
    body = _body(response)
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):  # OpenSearch: {"error": {"type", "reason"}, "status"}
            return str(error.get("reason") or error.get("type") or "")[:300]
        parts = [str(body[k]) for k in ("title", "detail") if body.get(k)]
        if parts:
            return ": ".join(parts)[:300]
        if body.get("message"):
            return str(body["message"])[:300]
    return (response.reason or "")[:300]


class _Http:
    """One HTTPS endpoint: a session that verifies TLS as told, with the timeout, and the
    mapping of transport failures and statuses into the errors above."""

    def __init__(
        self, url: str, *, verify: bool | str, timeout: float | None, service: str, name: str
    ) -> None:
        self.url = url.rstrip("/")
        self.service = service
        self.name = name  # "the Wazuh manager" / "the Wazuh indexer", for messages
        self.timeout = settings.WAZUH_TIMEOUT if timeout is None else timeout
        self.session = requests.Session()
        self.session.verify = verify
        self.session.trust_env = False  # no proxy or netrc credentials from the environment

    def send(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            return self.session.request(method, self.url + path, timeout=self.timeout, **kwargs)
        except requests.exceptions.SSLError as exc:
            raise WazuhError(
                f"TLS verification of {self.name} at {_where(self.url)} failed "
                f"(check its CA bundle): {exc.__class__.__name__}",
                service=self.service,
            ) from None
        except requests.exceptions.RequestException as exc:
            raise WazuhUnavailable(
                f"cannot reach {self.name} at {_where(self.url)}: {exc.__class__.__name__}",
                service=self.service,
            ) from None

    def refused(
        self, method: str, path: str, response: requests.Response
    ) -> WazuhError | WazuhUnavailable:
        status = response.status_code
        reason = _reason(response)
        what = f"{self.name} answered {status} to {method} {path}"
        if status >= 500 or status == 429:
            return WazuhUnavailable(f"{what} ({reason})", status=status, service=self.service)
        if status == 403:
            return WazuhError(
                f"{what}: the portal's user lacks a permission ({reason})",
                status=status,
                service=self.service,
            )
        return WazuhError(f"{what}: {reason}", status=status, service=self.service)

    def json(self, method: str, path: str, response: requests.Response) -> dict[str, Any]:
        body = _body(response)
        if not isinstance(body, dict):
            raise WazuhError(
                f"{self.name} answered {method} {path} with something that is not JSON",
                status=response.status_code,
                service=self.service,
            )
        return body


class WazuhClient:
    """The calls the portal makes to one Wazuh manager's API (https://host:55000).

    Reuse one client for a run of calls (a poll, a sweep): it logs in once and renews its
    token as needed. Thread-safe for the token; calls are plain blocking requests.
    """

    def __init__(
        self,
        url: str,
        user: str,
        password: str,
        *,
        verify: bool | str = True,
        timeout: float | None = None,
        page_limit: int | None = None,
    ) -> None:
        self._http = _Http(
            url, verify=verify, timeout=timeout, service="manager", name="the Wazuh manager"
        )
        self.user = user
        self._password = password
        self.page_limit = page_limit or settings.WAZUH_PAGE_LIMIT
        self._token = ""
        self._expires = 0.0
        self._lock = threading.Lock()
        self.logins = 0  # how many times this client logged in (for tests and figures)

    @classmethod
    def for_manager(cls, manager: WazuhManager, **kwargs: Any) -> WazuhClient:
        return cls(
            manager.api_url,
            manager.api_user,
            manager.api_password,
            verify=manager.tls_verify,
            **kwargs,
        )

    def __repr__(self) -> str:  # never the password, never the token
        return f"<WazuhClient {self.user}@{_where(self._http.url)}>"

    # -- the token

    def login(self) -> str:
        """Log in with Basic auth; the new JWT (kept for the calls that follow)."""
        path = "/security/user/authenticate"
        response = self._http.send("POST", path, auth=(self.user, self._password))
        if response.status_code == 401:
            raise WazuhAuthFailed(
                f"the Wazuh manager at {_where(self._http.url)} refused the API user "
                f"{self.user!r}: check the user and its password",
                status=401,
            )
        if response.status_code != 200:
            raise self._http.refused("POST", path, response)
        data = self._http.json("POST", path, response).get("data") or {}
        token = data.get("token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise WazuhError("the Wazuh manager's login answer holds no token", status=200)
        now = time.time()
        expires = _jwt_expiry(token, now)
        margin = min(RENEW_MARGIN, max(expires - now, 0.0) / 10)
        self._token, self._expires = token, expires - margin
        self.logins += 1
        return token

    def _current_token(self) -> str:
        with self._lock:
            if not self._token or time.time() >= self._expires:
                return self.login()
            return self._token

    def request(
        self, method: str, path: str, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """One API call with the token; the whole JSON answer. A 401 logs in again once."""
        used = self._current_token()
        response = self._send_with(used, method, path, params)
        if response.status_code == 401:
            with self._lock:  # another thread may have renewed it meanwhile
                token = self._token if self._token != used else self.login()
            response = self._send_with(token, method, path, params)
            if response.status_code == 401:
                raise WazuhAuthFailed(
                    f"the Wazuh manager refused a fresh token for {method} {path}: "
                    f"{_reason(response)}",
                    status=401,
                )
        if response.status_code != 200:
            raise self._http.refused(method, path, response)
        return self._http.json(method, path, response)

    def _send_with(
        self, token: str, method: str, path: str, params: dict[str, Any] | None
    ) -> requests.Response:
        return self._http.send(
            method, path, params=params, headers={"Authorization": f"Bearer {token}"}
        )

    # -- agents

    def agents(
        self,
        *,
        name: str | None = None,
        status: str | Sequence[str] | None = None,
        select: Sequence[str] | None = None,
        q: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Every agent that matches, paged with offset/limit until `total_affected_items`
        (one call per `limit` agents; the manager's agent 000 included unless `q` leaves it
        out: `q=EXCEPT_MANAGER`). `q` is Wazuh's query language, sent as it is."""
        limit = limit or self.page_limit
        params: dict[str, Any] = {"limit": limit}
        if name is not None:
            params["name"] = name
        if q:
            params["q"] = q
        if status:
            params["status"] = status if isinstance(status, str) else ",".join(status)
        if select:
            params["select"] = ",".join(select)
        found: list[dict[str, Any]] = []
        while True:
            data = self._data(self.request("GET", "/agents", {**params, "offset": len(found)}))
            page = data.get("affected_items") or []
            found += page
            total = int(data.get("total_affected_items") or 0)
            if not page or len(found) >= total:
                return found

    def agent_by_name(self, name: str) -> dict[str, Any] | None:
        """The agent of that name, or None (names are unique on a manager)."""
        found = self.agents(name=name)
        return found[0] if found else None

    def agents_summary(self) -> dict[str, int]:
        """`{"active", "disconnected", "never_connected", "pending", "total"}` counts."""
        data = self._data(self.request("GET", "/agents/summary/status"))
        connection = data.get("connection", data)  # 4.x nests them under "connection"
        return {k: int(v) for k, v in connection.items() if isinstance(v, int)}

    def delete_agents(self, ids: Iterable[str]) -> DeleteResult:
        """Delete these agents whatever their status and age (`status=all`,
        `older_than=0s`). The ids that failed (unknown, the manager's 000...) are in
        `failed`, not raised: the caller decides what an unknown id means."""
        wanted = sorted({str(i) for i in ids})
        if not wanted:
            return DeleteResult(affected=[])
        data = self._data(
            self.request(
                "DELETE",
                "/agents",
                {
                    "agents_list": ",".join(wanted),
                    "status": DELETE_STATUS,
                    "older_than": DELETE_OLDER_THAN,
                },
            )
        )
        return DeleteResult(
            affected=[str(i) for i in data.get("affected_items") or []],
            failed=list(data.get("failed_items") or []),
        )

    @staticmethod
    def _data(body: dict[str, Any]) -> dict[str, Any]:
        data = body.get("data")
        if not isinstance(data, dict):
            raise WazuhError("the Wazuh manager's answer holds no data", status=200)
        return data


# -- the indexer ----------------------------------------------------------------------------
class AlertSeverity(StrEnum):
    """How serious a rule level is, in the bands Wazuh's dashboard uses: low 0-6, medium
    7-11, high 12-14, critical 15 and above."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


# The lowest level of each band, highest first.
SEVERITY_FLOORS = (
    (15, AlertSeverity.CRITICAL),
    (12, AlertSeverity.HIGH),
    (7, AlertSeverity.MEDIUM),
)


def severity_of(level: int) -> AlertSeverity:
    """The band of a rule level (`12` -> high)."""
    return next((s for floor, s in SEVERITY_FLOORS if level >= floor), AlertSeverity.LOW)


@dataclass(frozen=True)
class Alert:
    """One Wazuh alert as the portal shows it."""

    time: datetime | None
    level: int
    description: str
    rule_id: str
    rule_groups: list[str]
    agent_name: str
    agent_id: str
    # The agent's labels as its alerts carry them (<labels> in ossec.conf), e.g.
    # {"group": "web"}; the agent's manager-side groups are WazuhAgent.groups.
    agent_labels: dict[str, Any]
    id: str = ""

    @property
    def severity(self) -> AlertSeverity:
        return severity_of(self.level)

    @classmethod
    def from_hit(cls, hit: dict[str, Any]) -> Alert:
        source = hit.get("_source") or {}
        rule = source.get("rule") or {}
        agent = source.get("agent") or {}
        stamp = source.get("timestamp") or source.get("@timestamp") or ""
        return cls(
            time=_parse_time(str(stamp)),
            level=int(rule.get("level") or 0),
            description=str(rule.get("description") or ""),
            rule_id=str(rule.get("id") or ""),
            rule_groups=[str(g) for g in rule.get("groups") or []],
            agent_name=str(agent.get("name") or ""),
            agent_id=str(agent.get("id") or ""),
            agent_labels=dict(agent.get("labels") or {}),
            id=str(hit.get("_id") or ""),
        )


def _parse_time(text: str) -> datetime | None:
    # Wazuh writes "2026-01-02T03:04:05.678+0000": Python wants the offset with a colon.
    if len(text) > 5 and text[-5] in "+-" and text[-4:].isdigit():
        text = f"{text[:-2]}:{text[-2:]}"
    try:
        return parse_datetime(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class AlertPage:
    total: int  # every match, not only this page
    alerts: list[Alert]


class IndexerClient:
    """Searches of a Wazuh indexer's `wazuh-alerts-*` indices (https://host:9200)."""

    def __init__(
        self,
        url: str,
        user: str,
        password: str,
        *,
        verify: bool | str = True,
        timeout: float | None = None,
    ) -> None:
        self._http = _Http(
            url, verify=verify, timeout=timeout, service="indexer", name="the Wazuh indexer"
        )
        self.user = user
        self._password = password

    @classmethod
    def for_manager(cls, manager: WazuhManager, **kwargs: Any) -> IndexerClient:
        if not manager.has_indexer:
            raise WazuhError(f"{manager} has no indexer configured", service="indexer")
        return cls(
            manager.indexer_url,
            manager.indexer_user,
            manager.indexer_password,
            verify=manager.tls_verify,
            **kwargs,
        )

    def __repr__(self) -> str:
        return f"<IndexerClient {self.user}@{_where(self._http.url)}>"

    def search(self, query: dict[str, Any]) -> AlertPage:
        path = f"/{ALERTS_INDEX}/_search"
        response = self._http.send("POST", path, json=query, auth=(self.user, self._password))
        if response.status_code == 401:
            raise WazuhAuthFailed(
                f"the Wazuh indexer at {_where(self._http.url)} refused the user "
                f"{self.user!r}: check the user and its password",
                status=401,
                service="indexer",
            )
        if response.status_code != 200:
            raise self._http.refused("POST", path, response)
        hits = self._http.json("POST", path, response).get("hits") or {}
        total = hits.get("total") or 0
        return AlertPage(
            total=int(total.get("value", 0) if isinstance(total, dict) else total),
            alerts=[Alert.from_hit(h) for h in hits.get("hits") or []],
        )

    def alerts(
        self, agent_name: str, *, size: int = 20, from_: int = 0, min_level: int | None = None
    ) -> AlertPage:
        """One agent's alerts, newest first, `size` from `from_`."""
        filters: list[dict[str, Any]] = [{"term": {"agent.name": agent_name}}]
        if min_level is not None:
            filters.append({"range": {"rule.level": {"gte": min_level}}})
        return self.search(
            {
                "query": {"bool": {"filter": filters}},
                "sort": [{"timestamp": {"order": "desc"}}],
                "size": size,
                "from": from_,
                "track_total_hits": True,
            }
        )

    def site_top_alerts(
        self, *, min_level: int, size: int = 20, agent_names: Sequence[str] | None = None
    ) -> AlertPage:
        """The highest-level alerts at or above `min_level`, highest then newest first;
        only those of `agent_names` when given (a site's agents, when sites share one)."""
        filters: list[dict[str, Any]] = [{"range": {"rule.level": {"gte": min_level}}}]
        if agent_names is not None:
            filters.append({"terms": {"agent.name": list(agent_names)}})
        return self.search(
            {
                "query": {"bool": {"filter": filters}},
                "sort": [{"rule.level": {"order": "desc"}}, {"timestamp": {"order": "desc"}}],
                "size": size,
                "from": 0,
                "track_total_hits": True,
            }
        )
