"""portalctl's walk of a list with a cursor (no server: an httpx transport answers as the
portal does, and records what was asked). The command against the real server is
tests/functional/cli/test_list_all.py."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from typer.testing import CliRunner

from portalctl.app import app
from portalctl.client import PAGE_SIZE, WALK_PAGE_SIZE, Api, walked
from portalctl.errors import CliError

ROWS = [{"id": n, "hostname": f"c{n}", "vmid": 100 + n} for n in range(2500)]


class Portal:
    """The container list with a cursor (the id of the last row), or as a portal from
    before the cursor: numbered pages of at most 200."""

    def __init__(self, *, cursor: bool = True) -> None:
        self.cursor = cursor
        self.asked: list[dict[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        query = {k: v[0] for k, v in parse_qs(request.url.query.decode(), True).items()}
        self.asked.append(query)
        size = int(query["page_size"])
        if not self.cursor:
            if size > PAGE_SIZE:
                detail = {"page_size": [f"page_size is a whole number from 1 to {PAGE_SIZE}"]}
                body = {"code": "invalid", "message": "page_size ...", "detail": detail}
                return httpx.Response(400, json=body)
            page = int(query.get("page", "1"))
            rows = ROWS[(page - 1) * size : page * size]
            following = f"/api/v1/containers/?page={page + 1}" if page * size < len(ROWS) else None
            body = {"count": len(ROWS), "next": following, "previous": None, "results": rows}
            return httpx.Response(200, json=body)
        start = int(query["cursor"]) + 1 if query.get("cursor") else 0
        rows = ROWS[start : start + size]
        more = start + size < len(ROWS)
        following = f"http://elsewhere/api/v1/containers/?cursor={rows[-1]['id']}" if more else None
        return httpx.Response(200, json={"next": following, "results": rows})


def api_for(portal: Portal) -> Api:
    api = Api("https://portal.test", "token")
    api._http = httpx.Client(
        base_url="https://portal.test/api/v1/", transport=httpx.MockTransport(portal)
    )
    return api


def test_a_walk_follows_the_cursor_at_the_largest_page_with_the_filters() -> None:
    portal = Portal()
    rows, more = walked(api_for(portal).walk("containers/", status="running", owner=None))
    assert rows == ROWS and more is False
    assert [q.get("cursor") for q in portal.asked] == ["", "999", "1999"]
    assert {q["page_size"] for q in portal.asked} == {str(WALK_PAGE_SIZE)}
    # The filters go with every page (None is left out); the `next` link's host is not
    # followed, only its cursor.
    assert all(q["status"] == "running" and "owner" not in q for q in portal.asked)


@pytest.mark.parametrize(
    ("limit", "requests", "more"),
    [(5, 1, True), (1000, 1, True), (1500, 2, True), (2500, 3, False), (4000, 3, False)],
)
def test_a_limit_stops_the_walk_and_says_whether_more_were_left(
    limit: int, requests: int, more: bool
) -> None:
    portal = Portal()
    rows, left = walked(api_for(portal).walk("containers/", limit=limit))
    assert rows == ROWS[:limit] and left is more
    assert len(portal.asked) == requests
    assert portal.asked[0]["page_size"] == str(min(limit, WALK_PAGE_SIZE))


def test_a_portal_from_before_the_cursor_is_walked_by_page_numbers() -> None:
    portal = Portal(cursor=False)
    rows, more = walked(api_for(portal).walk("containers/"))
    assert rows == ROWS and more is False
    # Refused at 1000 a page, asked again at 200; then pages 2, 3, ... of 200.
    assert portal.asked[0]["page_size"] == str(WALK_PAGE_SIZE)
    assert [q.get("page") for q in portal.asked[1:4]] == [None, "2", "3"]
    assert len(portal.asked) == 1 + len(ROWS) // PAGE_SIZE + 1


def test_a_cursor_page_without_a_cursor_is_an_error() -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"next": "https://portal.test/x/?page=2", "results": []})

    api = Api("https://portal.test", "token")
    api._http = httpx.Client(
        base_url="https://portal.test/api/v1/", transport=httpx.MockTransport(broken)
    )
    with pytest.raises(CliError, match="without a cursor"):
        walked(api.walk("containers/"))


def test_containers_list_shows_200_says_so_and_walks_all_with_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from portalctl.state import SESSION

    portal = Portal()
    monkeypatch.setattr(SESSION, "api", lambda: api_for(portal))
    runner = CliRunner()
    shown = runner.invoke(app, ["containers", "list", "--json"], catch_exceptions=False)
    assert shown.exit_code == 0 and len(_json(shown.stdout)) == 200
    assert "the first 200 shown; there are more: --all" in shown.stderr
    every = runner.invoke(app, ["containers", "list", "--all", "--json"], catch_exceptions=False)
    assert every.exit_code == 0 and _json(every.stdout) == ROWS and every.stderr == ""
    few = runner.invoke(app, ["containers", "list", "-n", "3"], catch_exceptions=False)
    assert few.exit_code == 0 and "c2" in few.stdout and "c3" not in few.stdout


def test_all_and_limit_together_are_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from portalctl.state import SESSION

    def no_api() -> None:
        raise AssertionError("no request for a usage error")

    monkeypatch.setattr(SESSION, "api", no_api)
    with pytest.raises(CliError) as caught:
        CliRunner().invoke(app, ["containers", "list", "--all", "-n", "5"], catch_exceptions=False)
    assert caught.value.exit_code == 2 and "--all or --limit" in caught.value.message


def _json(text: str) -> Any:
    import json

    return json.loads(text)
