"""The WSGI application: the request pipeline of pveproxy/pvedaemon.

Order, as in pve-http-server and pve-manager's HTTPServer.pm:
injected request faults, authentication (401s delayed), content on
GET/DELETE (501), parameter extraction (query overrides body), route lookup
(501), URI parameter conflicts, token-allowed check and declarative
permission check (403), proxying to the node (595 when offline), then
parameter validation (400) inside the handler.
"""

from __future__ import annotations

import json
import logging
import re
import time
import urllib.parse
from collections.abc import Callable, Iterable
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING, Any

from pvesim import admin
from pvesim.access import split_tokenid
from pvesim.api import load_all
from pvesim.errors import ApiError, param_error, perm_error
from pvesim.router import Ctx, expand, find_route
from pvesim.schema import normalize_json, validate

if TYPE_CHECKING:
    from pvesim.state import SimState
    from pvesim.tls import TlsFiles

log = logging.getLogger("pvesim")

StartResponse = Callable[..., Any]
BASE = "/api2/json"

load_all()


class Response:
    def __init__(
        self, status: int, reason: str, body: bytes = b"", ctype: str | None = None
    ) -> None:
        self.status = status
        self.reason = reason
        self.body = body
        self.ctype = ctype

    @classmethod
    def json(cls, status: int, reason: str, payload: Any) -> Response:
        body = json.dumps(payload, separators=(",", ":")).encode()
        return cls(status, reason, body, "application/json;charset=UTF-8")

    @classmethod
    def error(cls, err: ApiError) -> Response:
        if not err.body:
            return cls(err.status, err.reason)
        payload: dict[str, Any] = {"data": None, "message": err.message}
        if err.errors:
            payload["errors"] = err.errors
        return cls.json(err.status, err.reason, payload)

    def send(self, start_response: StartResponse) -> Iterable[bytes]:
        now = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())
        headers = [
            ("Cache-Control", "max-age=0"),
            ("Pragma", "no-cache"),
            ("Expires", now),
            ("Content-Length", str(len(self.body))),
        ]
        if self.ctype:
            headers.append(("Content-Type", self.ctype))
        start_response(f"{self.status} {self.reason}", headers)
        return [self.body]


STATUS_TEXT = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    500: "Internal Server Error",
}


def _header_value(header: str | None, key: str) -> str | None:
    """Formatter::extract_auth_value: ``KEY=value`` or ``KEY value``."""
    if not header:
        return None
    m = re.search(rf"(?:^|\s){re.escape(key)}(?:=|\s)([^;]*)", header)
    return urllib.parse.unquote(m.group(1)) if m else None


def _cookie(environ: dict[str, Any], name: str) -> str | None:
    raw = environ.get("HTTP_COOKIE")
    if not raw:
        return None
    try:
        jar: SimpleCookie = SimpleCookie()
        jar.load(raw)
        if name in jar:
            return urllib.parse.unquote(jar[name].value)
    except Exception:  # a cookie Python cannot parse: fall back to a regex
        m = re.search(rf"(?:^|;\s*){name}=([^;]*)", raw)
        if m:
            return urllib.parse.unquote(m.group(1))
    return None


def _merge(target: dict[str, Any], key: str, value: Any) -> None:
    if key in target:
        old = target[key]
        target[key] = [*old, value] if isinstance(old, list) else [old, value]
    else:
        target[key] = value


class PveApp:
    def __init__(self, state: SimState, tls: TlsFiles | None = None) -> None:
        self.state = state
        self.tls = tls
        self.admin = admin.AdminApi(state)

    # WSGI entry point
    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/") or "/"
        method = environ.get("REQUEST_METHOD", "GET").upper()
        try:
            if path.startswith("/_sim/") or path == "/_sim":
                return self.admin.handle(environ, start_response)
            latency = self.state.faults.latency
            if latency > 0:
                time.sleep(latency)
            resp = self._api(environ, method, path)
        except ApiError as err:
            resp = Response.error(err)
        except Exception:
            log.exception("internal error handling %s %s", method, path)
            resp = Response.json(
                500,
                "internal simulator error",
                {"data": None, "message": "internal simulator error"},
            )
        return resp.send(start_response)

    # -- pipeline ------------------------------------------------------------

    def _api(self, environ: dict[str, Any], method: str, path: str) -> Response:
        state = self.state
        if not path.startswith(BASE + "/") and path != BASE:
            raise ApiError(501, "no such uri", body=False)
        rel = path[len(BASE) :] or "/"
        with state.lock:
            state.request_counts[f"{method} {rel}"] += 1
            fault = state.faults.take_request_fault(method, rel)
            if fault is not None and fault.delay > 0:
                state.faults.delayed += 1
        if fault is not None and fault.delay > 0:
            time.sleep(fault.delay)  # a slow answer, outside the lock as on a busy node
            if not fault.status:
                fault = None
        if fault is not None:
            if fault.status >= 595:
                return Response(fault.status, fault.reason)
            return Response.error(ApiError(fault.status, fault.reason + "\n"))

        authorization = environ.get("HTTP_AUTHORIZATION")
        api_token = _header_value(authorization, "PVEAPIToken")
        try:
            authuser = self._authenticate(environ, method, rel, api_token, authorization)
        except ApiError as err:
            if err.status == 401:
                self._auth_delay()
            raise

        if method not in ("POST", "PUT") and int(environ.get("CONTENT_LENGTH") or 0) > 0:
            raise ApiError(501, f"Unexpected content for method '{method}'", body=False)
        params = self._params(environ, method)

        route, uri_params = find_route(method, rel)
        if route is None:
            raise ApiError(501, f"Method '{method} {rel}' not implemented")

        for key in sorted(params):
            if key in uri_params and uri_params[key] != params[key]:
                raise param_error(
                    {key: "duplicate parameter (already defined in URI) with conflicting values!"}
                )
        merged: dict[str, Any] = {**params, **uri_params}

        if api_token is not None and not route.allowtoken:
            raise perm_error(f"URI '{rel}' not available with API token, need proper ticket.\n")

        ctx = Ctx(state, authuser or "", api_token is not None, method, rel)
        ctx.extra["api_token"] = api_token
        try:
            with state.lock:
                # Proxmox's workers run in real time: bring every due one up to now first,
                # so that no answer lags behind the scheduler's tick.
                state.tick()
                if route.perm is not None:
                    perm_path = expand(route.perm.path, merged)
                    if route.perm.any:
                        ctx.check_any(perm_path, route.perm.privs)
                    else:
                        ctx.check(perm_path, route.perm.privs)
                if route.pre_check is not None:
                    route.pre_check(ctx, merged)
                if route.proxy:
                    node = str(merged.get("node", ""))
                    state.node(node)
                    if node in state.faults.offline:
                        return Response(595, state.faults.offline[node])
                typed = validate(merged, route.params)
                data = route.handler(ctx, typed)
                if method != "GET":
                    state.mark_dirty()  # written by the ticker (SimState.flush_due)
        except ApiError as err:
            if err.status == 401:
                self._auth_delay()
            raise
        payload: dict[str, Any] = {"data": data}
        if ctx.total:
            payload["total"] = ctx.total
        return Response.json(200, "OK", payload)

    def _auth_delay(self) -> None:
        delay = self.state.auth_delay
        if delay > 0:
            time.sleep(delay)

    def _authenticate(
        self,
        environ: dict[str, Any],
        method: str,
        rel: str,
        api_token: str | None,
        authorization: str | None,
    ) -> str | None:
        state = self.state
        norm = rel.rstrip("/") or "/"
        if (norm == "/access/domains" and method == "GET") or (
            norm == "/access/ticket" and method in ("GET", "POST")
        ):
            return None
        now = state.now()
        with state.lock:
            if api_token is not None:
                return self._verify_token(api_token)
            ticket = _cookie(environ, "PVEAuthCookie") or _header_value(
                authorization, "PVEAuthCookie"
            )
            if not ticket:
                raise ApiError(401, "No ticket\n", body=False)
            verified = state.tickets.verify_ticket(ticket, now)
            if verified is None:
                raise ApiError(401, "Authentication failed!\n", body=False)
            userid = verified[0]
            user = state.access.users.get(userid)
            if user is None or not user.enable:
                raise ApiError(401, "Authentication failed!\n", body=False)
            if method != "GET":
                csrf = environ.get("HTTP_CSRFPREVENTIONTOKEN")
                if not state.tickets.verify_csrf(userid, csrf, now):
                    raise ApiError(401, "Permission denied - invalid csrf token\n", body=False)
            return userid

    def _verify_token(self, api_token: str) -> str:
        failed = ApiError(401, "Authentication failed!\n", body=False)
        m = re.fullmatch(r"(.*)=(.*)", api_token, re.S)
        if not m:
            raise failed
        tokenid, value = m.group(1), m.group(2)
        parts = split_tokenid(tokenid)
        if parts is None:
            raise failed
        user = self.state.access.users.get(parts[0])
        token = user.tokens.get(parts[1]) if user else None
        if user is None or token is None or not user.enable or token.revoked:
            raise failed
        if token.expire and token.expire < self.state.now():
            raise failed
        if token.secret != value:
            raise failed
        return tokenid

    def _params(self, environ: dict[str, Any], method: str) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if method in ("POST", "PUT"):
            length = int(environ.get("CONTENT_LENGTH") or 0)
            chunked = "chunked" in (environ.get("HTTP_TRANSFER_ENCODING") or "").lower()
            if chunked or environ.get("wsgi.input_terminated"):  # the server de-chunks it
                raw = environ["wsgi.input"].read()
            else:
                raw = environ["wsgi.input"].read(length) if length > 0 else b""
            ctype = (environ.get("CONTENT_TYPE") or "").split(";", 1)[0].strip().lower()
            if raw and ctype == "application/json":
                try:
                    body = json.loads(raw.decode("utf-8"))
                except (ValueError, UnicodeDecodeError) as exc:
                    raise ApiError(400, f"malformed JSON string: {exc}\n") from exc
                if isinstance(body, dict):
                    for key, value in body.items():
                        if value is not None:
                            params[key] = normalize_json(value)
            elif raw:
                text = raw.decode("utf-8", "replace")
                for key, value in urllib.parse.parse_qsl(text, keep_blank_values=True):
                    _merge(params, key, value)
        query: dict[str, Any] = {}
        for key, value in urllib.parse.parse_qsl(
            environ.get("QUERY_STRING", ""), keep_blank_values=True
        ):
            _merge(query, key, value)
        params.update(query)  # query parameters override the body
        params.pop("_dc", None)
        return params
