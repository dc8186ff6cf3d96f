"""The REST API over httpx: the token, the one error shape, retries, pages."""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, BinaryIO

from . import __version__
from .errors import ApiError, CliError, Exit

if TYPE_CHECKING:
    import httpx

API_PREFIX = "/api/v1/"
PAGE_SIZE = 200
# The container list's largest page (a cursor walk of 10,000 is 10 requests); a portal
# from before it refuses it, and is walked at PAGE_SIZE.
WALK_PAGE_SIZE = 1000
# Retries: a few, for requests that may be repeated (reads, and a create with its key).
ATTEMPTS = 4
RETRY_STATUSES = frozenset({429, 502, 503, 504})
MAX_RETRY_WAIT = 10.0
UPLOAD_TIMEOUT = 300.0


def _retry_wait(response: httpx.Response | None, attempt: int) -> float:
    header = response.headers.get("Retry-After", "") if response is not None else ""
    if header.isdigit():
        return min(float(header), MAX_RETRY_WAIT)
    return min(0.25 * 2.0**attempt, MAX_RETRY_WAIT)


def error_from(response: httpx.Response) -> ApiError:
    """The API's own error, or a description of what answered instead."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "code" in body:
        return ApiError(
            response.status_code,
            str(body.get("code", "")),
            str(body.get("message", "")),
            body.get("detail") or {},
        )
    reason = response.reason_phrase or "error"
    return ApiError(
        response.status_code,
        "http_error",
        f"HTTP {response.status_code} {reason} from {response.request.url}",
        {},
    )


class Api:
    """One portal: `url` is its root (https://portal.example.org), `token` a Bearer token."""

    def __init__(
        self, url: str, token: str = "", *, ca_bundle: str = "", timeout: float = 30.0
    ) -> None:
        import httpx

        if not url:
            raise CliError("no portal URL: run `portalctl login URL`, or set PORTAL_URL", Exit.AUTH)
        if not url.startswith(("http://", "https://")):
            raise CliError(f"the portal URL must start with https:// (got {url!r})", Exit.USAGE)
        headers = {"User-Agent": f"portalctl/{__version__}", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.url = url.rstrip("/").removesuffix("/api/v1")
        self.has_token = bool(token)
        self._http = httpx.Client(
            base_url=self.url + API_PREFIX,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=10.0),
            verify=ca_bundle or True,
        )

    def close(self) -> None:
        self._http.close()

    # -- requests --------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        retry: bool | None = None,
    ) -> Any:
        """The decoded body of a 2xx answer (None for 204); anything else raises ApiError.

        Reads are retried on connection errors, 429, 502, 503 and 504 (after Retry-After);
        a write only when `retry` says it may be repeated (a create with its key)."""
        import httpx

        may_retry = method in ("GET", "HEAD") if retry is None else retry
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        for attempt in range(ATTEMPTS):
            last = attempt == ATTEMPTS - 1 or not may_retry
            try:
                response = self._http.request(
                    method, path.lstrip("/"), json=json, params=clean, headers=headers
                )
            except httpx.TransportError as exc:
                if last:
                    raise CliError(f"cannot reach {self.url}: {_reason(exc)}") from exc
                time.sleep(_retry_wait(None, attempt))
                continue
            if response.status_code in RETRY_STATUSES and not last:
                time.sleep(_retry_wait(response, attempt))
                continue
            if response.is_success:
                return self._decoded(response)
            raise self._refused(response)
        raise AssertionError("unreachable")  # pragma: no cover

    def _decoded(self, response: httpx.Response) -> Any:
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise CliError(
                f"{self.url} answered {response.request.url.path} with something other than "
                "the portal's API (is the URL right?)"
            ) from None

    def _refused(self, response: httpx.Response) -> ApiError:
        error = error_from(response)
        if response.status_code == 401 and self.has_token:
            error.details.append("the token was refused (revoked or expired?): portalctl login")
        elif error.code == "not_authenticated":
            error.details.append("log in first: portalctl login URL (or set PORTAL_TOKEN)")
        return error

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return self.request("POST", path, json=body, **kwargs)

    def patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, json=body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def upload(
        self, path: str, *, fields: dict[str, str], files: dict[str, tuple[str, BinaryIO, str]]
    ) -> Any:
        """A multipart/form-data POST (a deploy's spec and source), sent once: a file's
        stream is read as it is sent, so it is never retried here."""
        import httpx

        # The server reads and checks the whole archive before it answers.
        timeout = httpx.Timeout(UPLOAD_TIMEOUT, connect=10.0)
        try:
            response = self._http.post(path.lstrip("/"), data=fields, files=files, timeout=timeout)
        except httpx.TransportError as exc:
            raise CliError(f"cannot reach {self.url}: {_reason(exc)}") from exc
        if response.is_success:
            return self._decoded(response)
        raise self._refused(response)

    def pages(self, path: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Every object of a list endpoint, page after page."""
        page = 1
        while True:
            body = self.get(path, page=page, page_size=PAGE_SIZE, **params)
            if isinstance(body, list):  # an endpoint without pages
                yield from body
                return
            yield from body.get("results", [])
            if not body.get("next"):
                return
            page += 1

    def walk(
        self, path: str, *, limit: int | None = None, **params: Any
    ) -> Generator[dict[str, Any], None, bool]:
        """The objects of a list that has a cursor (containers/), in its order: the first
        `limit` of them, or every one, at WALK_PAGE_SIZE a page; returns whether more were
        left. Every page costs the server the same however far the walk has gone, and
        objects created or deleted meanwhile make none of the others repeat or go missing.
        A portal from before the cursor is walked by page numbers."""
        from urllib.parse import parse_qs, urlsplit

        size = WALK_PAGE_SIZE if limit is None else max(1, min(WALK_PAGE_SIZE, limit))
        try:
            body = self.get(path, cursor="", page_size=size, **params)
        except ApiError as error:
            if error.status != 400 or "page_size" not in (error.detail or {}):
                raise
            size = min(size, PAGE_SIZE)  # a portal from before the cursor
            body = self.get(path, cursor="", page_size=size, **params)
        left, page = limit, 1
        while True:
            rows = body.get("results", [])
            if left is not None:
                rows, left = rows[:left], left - len(rows[:left])
            yield from rows
            following = body.get("next")
            if not following or left == 0:
                return bool(following) or len(body.get("results", [])) > len(rows)
            if "count" in body:  # numbered pages: a portal from before the cursor
                page += 1
                body = self.get(path, page=page, page_size=size, **params)
                continue
            cursor = parse_qs(urlsplit(following).query).get("cursor", [""])[0]
            if not cursor:
                raise CliError(f"{self.url} answered a cursor page without a cursor to go on")
            body = self.get(path, cursor=cursor, page_size=size, **params)

    @contextmanager
    def stream(self, path: str, headers: dict[str, str]) -> Iterator[httpx.Response]:
        """A streaming GET (Server-Sent Events): no read deadline beyond the keep-alives'."""
        import httpx

        timeout = httpx.Timeout(30.0, connect=10.0)
        with self._http.stream(
            "GET", path.lstrip("/"), headers=headers, timeout=timeout
        ) as response:
            yield response


def walked(walk: Generator[dict[str, Any], None, bool]) -> tuple[list[dict[str, Any]], bool]:
    """A walk's objects, and whether more were left (Api.walk's limit)."""
    rows = []
    while True:
        try:
            rows.append(next(walk))
        except StopIteration as end:
            return rows, bool(end.value)


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0]
