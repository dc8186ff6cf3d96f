"""The decoy-cookie attack, replayed in a real Chromium through the real gateway.

A container answers its first request with path-scoped cookies named like the portal's
session (`Path=/p/q/r`, then `/p/q`, `/p`) and redirects into that path, hoping the
gateway's cookie stripping eats the decoys and lets the visitor's real session through.
Neither the portal's session nor the gateway's credential may reach it, for any visitor,
staff included.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

from networking import publishing
from networking.models import RouteAccess
from portal.procs import free_port
from tests.fixtures.networking import apply, create
from tests.functional.browser.conftest import PASSWORD, log_in, make_user

pytestmark = [pytest.mark.gateway, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DOMAIN = "apps.example.test"
DECOYS = [
    "portal_session=decoy1; Path=/p/q/r",
    "portal_session=decoy2; Path=/p/q",
    "portal_session=decoy3; Path=/p",
    "__Host-portal_session=decoy4; Path=/; Secure",
    "__Host-portal_gw=decoy5; Path=/p/q/r; Secure",  # a browser refuses: __Host- needs Path=/
    f"portal_session=decoy6; Domain={DOMAIN}; Path=/",
    "sessionid=decoy7; Path=/p/q/r",  # the container's own cookie, which it may have
]


class Harvester(BaseHTTPRequestHandler):
    """The malicious container: plants decoys, then records every Cookie it is sent."""

    seen: list[tuple[str, list[str]]]

    def do_GET(self) -> None:
        self.server.seen.append((self.path, self.headers.get_all("Cookie") or []))  # type: ignore[attr-defined]
        if self.path == "/":
            self.send_response(302)
            for decoy in DECOYS:
                self.send_header("Set-Cookie", decoy)
            self.send_header("Location", "/p/q/r")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b"<!doctype html><title>harvested</title><p>thanks</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def harvester(gw_site: Any) -> Iterator[tuple[Any, ThreadingHTTPServer]]:
    owner = make_user("mallory")
    box = create(gw_site, "evil", owner=owner)
    port = free_port(box.ip)
    srv = ThreadingHTTPServer((box.ip, port), Harvester)
    srv.seen = []  # type: ignore[attr-defined]
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    publishing.route_update(
        route=box.routes.get(name=""), backend_port=port, access=RouteAccess.OWNER
    )
    yield box, srv
    srv.shutdown()
    srv.server_close()


def test_a_container_cannot_harvest_a_visitors_session_with_decoy_cookies(
    local_gateway: Any, harvester: Any, live_server: Any, settings: Any, browser: Any
) -> None:
    settings.LOCAL_LOGIN_FOR_USERS = True  # local passwords, as tests/functional/browser does
    settings.GATEWAY_AUTH_URL = f"{live_server.url}/gateway/auth"
    settings.GATEWAY_PORTAL_URL = live_server.url
    box, srv = harvester
    assert apply(box.site).status == "applied"
    make_user("stella", is_staff=True)  # staff may open every container: the richest victim
    gw_port = local_gateway.ports["https"]
    url = f"https://evil.{DOMAIN}:{gw_port}/"

    context = browser.new_context(base_url=live_server.url, ignore_https_errors=True)
    try:
        context.set_default_timeout(15_000)
        page = context.new_page()
        log_in(page, "stella")
        page.goto(url)  # gateway -> portal bounce -> exchange -> container -> decoys -> /p/q/r
        page.wait_for_url("**/p/q/r")
        page.reload()
        page.goto(url)
        page.wait_for_url("**/p/q/r")
        jar = context.cookies()
    finally:
        context.close()

    host = f"evil.{DOMAIN}"
    portal = urlsplit(live_server.url).hostname
    sessions = [c for c in jar if c["name"] == settings.SESSION_COOKIE_NAME]
    # The real session lives on the portal's host only (the others are the decoys).
    [real] = [c for c in sessions if c["domain"] == portal]
    session = real["value"]
    credential = next(c for c in jar if c["name"] == settings.GATEWAY_CREDENTIAL_COOKIE)
    assert credential["domain"] == host  # host-only, the one host
    assert credential["httpOnly"] and credential["secure"]
    assert not credential["value"].startswith("decoy")

    paths = [path for path, _ in srv.seen]
    assert paths.count("/p/q/r") >= 3, paths  # the attack really ran, three times
    arrived = "\n".join(line for _, lines in srv.seen for line in lines)
    assert "sessionid=decoy7" in arrived  # the container's own cookies do reach it
    assert session not in arrived and credential["value"] not in arrived, arrived
    assert "portal_session" not in arrived and "portal_gw" not in arrived, arrived


def test_a_visitor_who_is_not_logged_in_signs_in_and_lands_on_the_route(
    local_gateway: Any, harvester: Any, live_server: Any, settings: Any, browser: Any
) -> None:
    """Route -> portal login form -> POST -> redirects back to the route's host: the login
    page's Content-Security-Policy must let its form's redirects reach the gateway."""
    settings.LOCAL_LOGIN_FOR_USERS = True
    settings.GATEWAY_AUTH_URL = f"{live_server.url}/gateway/auth"
    settings.GATEWAY_PORTAL_URL = live_server.url
    box, _srv = harvester
    assert apply(box.site).status == "applied"
    url = f"https://evil.{DOMAIN}:{local_gateway.ports['https']}/deep/er?x=1&y=two"
    violations: list[str] = []

    context = browser.new_context(base_url=live_server.url, ignore_https_errors=True)
    try:
        context.set_default_timeout(15_000)
        page = context.new_page()
        page.on(
            "console",
            lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
        )
        page.goto(url)
        page.wait_for_url("**/accounts/login/**")
        page.get_by_label("Username").fill("mallory")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"https://evil.{DOMAIN}:*/deep/er?x=1&y=two")
        assert "thanks" in page.content()
    finally:
        context.close()
    assert violations == []
