"""Protected routes through the real nginx: the portal's session never reaches a container.

The portal's session cookie is host-only on the portal's host; a route host gets the
gateway's own credential (a host-only `__Host-` cookie minted by the portal after login),
and every occurrence of either cookie is removed before a request is proxied, whatever
the number, order, spelling and split of the Cookie lines (HTTP/1.1 lines, HTTP/2 crumbs).
"""

from __future__ import annotations

import json
import subprocess
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from auth.models import GatewayCredential
from networking import publishing
from networking.models import RouteAccess
from tests.conftest import need_binary
from tests.factories import UserFactory
from tests.fixtures.networking import apply, create, https

pytestmark = [pytest.mark.gateway, pytest.mark.django_db(transaction=True)]

DOMAIN = "apps.example.test"


@pytest.fixture
def portal(live_server: Any, settings: Any) -> Any:
    """The gateway asks this live portal; the test's own client plays the browser on it."""
    settings.GATEWAY_AUTH_URL = f"{live_server.url}/gateway/auth"
    settings.GATEWAY_PORTAL_URL = live_server.url
    return live_server


def serve(stand_ins: Any, container: Any, access: str) -> None:
    port = stand_ins.http(container.ip, container.hostname)
    publishing.route_update(route=container.routes.get(name=""), backend_port=port, access=access)


def curl(
    gw: Any, host: str, path: str = "/", cookie_lines: list[str] = (), *, http2: bool = False
) -> tuple[int, dict[str, Any] | None]:
    """One request with each Cookie line sent as its own header field (crumbs over HTTP/2)."""
    port = gw.ports["https"]
    cmd = [
        need_binary("curl"),
        "-sS",
        "--http2" if http2 else "--http1.1",
        "--cacert",
        str(gw.ca),
        "--resolve",
        f"{host}:{port}:127.0.0.1",
        "-o",
        "-",
        "-w",
        "\n%{http_code} %{http_version}",
    ]
    for line in cookie_lines:
        cmd += ["-H", f"Cookie: {line}"]
    out = subprocess.run(
        [*cmd, f"https://{host}:{port}{path}"], capture_output=True, timeout=15, check=True
    ).stdout
    body, _, tail = out.rpartition(b"\n")
    code, version = tail.decode().split()
    assert version == ("2" if http2 else "1.1")
    try:
        return int(code), json.loads(body)
    except ValueError:
        return int(code), None


def sign_in(gw: Any, client: Any, user: Any, host: str, path: str = "/") -> str:
    """The browser's way in: gateway -> portal login bounce -> exchange on the host.

    Returns the credential cookie's value.
    """
    r = https(gw, host, path)
    assert r.status == 302, r.data[:300]
    login = r.headers["Location"]
    portal_path = login.split("://", 1)[1].partition("/")[2]
    assert portal_path.startswith(f"gateway/login?next=https://{host}:")
    client.force_login(user)
    r = client.get("/" + portal_path)
    assert r.status_code == 302, r.content[:300]
    back = urlsplit(r["Location"])
    assert back.hostname == host and back.path == "/.cluster-portal/session"
    assert parse_qs(back.query)["next"] == [path]
    r = https(gw, host, f"{back.path}?{back.query}")
    assert r.status == 302 and r.headers["Location"] == path
    assert r.headers["Referrer-Policy"] == "no-referrer"
    set_cookie = r.headers["Set-Cookie"]
    name, _, rest = set_cookie.partition("=")
    assert name == settings.GATEWAY_CREDENTIAL_COOKIE == "__Host-portal_gw"
    value = rest.split(";")[0]
    attrs = {a.strip().split("=")[0].lower() for a in set_cookie.split(";")[1:]}
    assert {"secure", "httponly", "path"} <= attrs and "domain" not in attrs
    # The exchanged code is spent.
    assert https(gw, host, f"{back.path}?{back.query}").status == 403
    return value


def test_the_portal_session_cookie_is_host_only_and_never_the_gateways() -> None:
    # Production names and flags: tests/unit/test_settings.py.
    assert settings.SESSION_COOKIE_DOMAIN is None and settings.CSRF_COOKIE_DOMAIN is None
    assert settings.SESSION_COOKIE_HTTPONLY
    assert settings.SESSION_COOKIE_NAME != settings.GATEWAY_CREDENTIAL_COOKIE


def test_a_protected_route_signs_in_through_the_portal_and_keeps_the_deep_link(
    gw_site: Any, local_gateway: Any, stand_ins: Any, portal: Any, client: Any
) -> None:
    owner, other = UserFactory(username="olga"), UserFactory(username="otto")
    private = create(gw_site, "private", owner=owner)
    members = create(gw_site, "members", owner=owner)
    serve(stand_ins, private, RouteAccess.OWNER)
    serve(stand_ins, members, RouteAccess.USERS)
    assert apply(gw_site).status == "applied"
    host = f"private.{DOMAIN}"

    mine = sign_in(local_gateway, client, owner, host, "/deep/path?x=1&y=2")
    code, seen = curl(local_gateway, host, "/deep/path?x=1&y=2", [f"theme=dark; {_cred(mine)}"])
    assert code == 200 and seen is not None
    assert seen["path"] == "/deep/path?x=1&y=2"
    assert seen["cookies"] == ["theme=dark"]  # the container's own cookies only

    # Good only on the host it was minted for.
    assert curl(local_gateway, f"members.{DOMAIN}", "/", [_cred(mine)])[0] == 302
    # Another user's credential: the friendly 403, the container never asked.
    theirs = sign_in(local_gateway, client, other, host)
    code, seen = curl(local_gateway, host, "/", [_cred(theirs)])
    assert code == 403 and seen is None
    # Never good for the portal itself.
    client.logout()
    client.cookies[settings.GATEWAY_CREDENTIAL_COOKIE] = mine
    assert client.get("/").status_code == 302  # to the login page

    # A forged or unknown `next` is refused, and never redirects off the gateway.
    client.force_login(owner)
    for bad in ("https://evil.example.org/", f"http://{host}/", f"https://{host}:1/", ""):
        r = client.get(f"/gateway/login?next={bad}")
        assert r.status_code == 400


def test_logout_revokes_the_gateway_credentials_of_that_session(
    gw_site: Any, local_gateway: Any, stand_ins: Any, portal: Any, client: Any
) -> None:
    owner = UserFactory(username="lou")
    box = create(gw_site, "box", owner=owner)
    serve(stand_ins, box, RouteAccess.OWNER)
    assert apply(gw_site).status == "applied"
    host = f"box.{DOMAIN}"
    cred = sign_in(local_gateway, client, owner, host)
    assert curl(local_gateway, host, "/", [_cred(cred)])[0] == 200
    assert client.post("/accounts/logout/").status_code == 302
    assert curl(local_gateway, host, "/", [_cred(cred)])[0] == 302
    assert GatewayCredential.objects.get(user=owner).revoked_at is not None


def test_the_reported_attack_four_session_cookies_reach_nothing(
    gw_site: Any, local_gateway: Any, stand_ins: Any, portal: Any
) -> None:
    """The issue's curl: `s=C; s=B; s=A; s=REAL` once arrived as `s=C; s=REAL`."""
    web = create(gw_site, "web")
    serve(stand_ins, web, RouteAccess.PUBLIC)
    assert apply(gw_site).status == "applied"
    s = settings.SESSION_COOKIE_NAME
    line = f"{s}=C; {s}=B; {s}=A; {s}=REAL; keep=1"
    for http2 in (False, True):
        code, seen = curl(local_gateway, f"web.{DOMAIN}", "/", [line], http2=http2)
        assert code == 200 and seen is not None
        assert seen["cookies"] == ["keep=1"]


def _cred(value: str) -> str:
    return f"{settings.GATEWAY_CREDENTIAL_COOKIE}={value}"


# -- the property: any number, order, spelling and split of cookies ------------------------------
PRIVATE_SPELLINGS = st.sampled_from(
    [
        "__Host-portal_gw",
        "__host-portal_gw",
        "__HOST-PORTAL_GW",
        "portal_session",
        "Portal_Session",
        "__Host-portal_session",
    ]
)
APP_NAMES = st.sampled_from(["theme", "lang", "csrftoken", "sessionid", "_ga", "portal_gwx"])
SPACES = st.sampled_from(["", " ", "  ", "\t"])


@st.composite
def cookie_jars(draw: Any) -> tuple[list[str], list[str], bool]:
    """(Cookie lines to send, the app cookies in order, HTTP/2?)."""
    pieces: list[tuple[bool, str]] = []
    for _ in range(draw(st.integers(1, 12))):
        if draw(st.booleans()):
            name, secret = draw(PRIVATE_SPELLINGS), draw(st.sampled_from(["{CRED}", "{SESSION}"]))
            pad = draw(SPACES)
            pieces.append((True, f"{pad}{name}{pad}={pad}{secret}"))
        else:
            value = draw(st.from_regex(r"[A-Za-z0-9._-]{0,12}", fullmatch=True))
            pieces.append((False, f"{draw(APP_NAMES)}={value}"))
    # Split into 1..n Cookie lines at random places (several lines, or crumbs over HTTP/2).
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(pieces) - 1)), max_size=3)))
    lines, start = [], 0
    for cut in [*cuts, len(pieces)]:
        if cut > start:
            lines.append("; ".join(p for _, p in pieces[start:cut]))
            start = cut
    return lines, [p for private, p in pieces if not private], draw(st.booleans())


@pytest.mark.parametrize("access", [RouteAccess.PUBLIC, RouteAccess.USERS])
def test_no_mix_of_cookies_lets_a_private_one_through(
    gw_site: Any, local_gateway: Any, stand_ins: Any, portal: Any, client: Any, access: str
) -> None:
    user = UserFactory(username="pat")
    box = create(gw_site, "box", owner=user)
    serve(stand_ins, box, RouteAccess.USERS)
    assert apply(gw_site).status == "applied"
    host = f"box.{DOMAIN}"
    real = sign_in(local_gateway, client, user, host)
    if access != RouteAccess.USERS:  # a route made public keeps the browser's credential
        publishing.route_update(route=box.routes.get(name=""), access=access)
        assert apply(gw_site).status == "applied"
    client.force_login(user)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    seen_requests = 0

    @hsettings(
        max_examples=40,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(jar=cookie_jars())
    def check(jar: tuple[list[str], list[str], bool]) -> None:
        nonlocal seen_requests
        lines, app_cookies, http2 = jar
        # The real secrets stand where the jar says CRED and SESSION; the real credential
        # always rides along, so protected routes let the request through.
        lines = [ln.replace("{CRED}", real).replace("{SESSION}", session) for ln in lines]
        lines.append(_cred(real))
        code, seen = curl(local_gateway, host, "/", lines, http2=http2)
        assert code == 200 and seen is not None, (code, lines)
        arrived = "\n".join(seen["cookies"])
        assert real not in arrived and session not in arrived, (lines, seen["cookies"])
        got = [p.strip() for line in seen["cookies"] for p in line.split(";") if p.strip()]
        assert got == [p.strip() for p in app_cookies], (lines, seen["cookies"])
        seen_requests += 1

    check()
    assert seen_requests == 40
