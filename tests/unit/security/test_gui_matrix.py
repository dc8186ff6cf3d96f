"""Every POST view of the GUI under every kind of caller: anonymous, another user, a
collaborator, the owner, staff. Another user's objects are 404 (anonymous callers are sent
to log in), and a refused caller changes nothing in the database.

The POST views are found from the URLconf: a view that takes POST and is not in MATRIX
fails `test_every_post_view_is_in_the_matrix`, so a new one cannot be forgotten.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.apps import apps
from django.contrib.auth.models import User
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from auth import sshkeys
from auth import tokens as auth_tokens
from containers.models import Deployment
from tests.factories import make_access_world, make_failed_create
from tests.figures import count_5xx

pytestmark = [pytest.mark.django_db, pytest.mark.security]

ROLES = ("anonymous", "other", "collab", "owner", "staff")
# What a caller gets: ok (it acts), 404, login (sent to log in), refused (a message, no
# change), same (nobody changes anything: a conflict, a public page).
OK, NF, LOGIN, REFUSED, SAME = "ok", "404", "login", "refused", "same"
C = "/containers/{cid}"
# url name: (path, body, outcome per role in ROLES order)
MATRIX: dict[str, list[tuple[str, dict[str, Any], tuple[str, ...]]]] = {
    "container-create": [
        ("/containers/new/", {"hostname": "fresh", "template": "{tid}"}, (LOGIN, OK, OK, OK, OK))
    ],
    "container-collaborator-add": [
        (C + "/collaborators/add/", {"username": "bystander"}, (LOGIN, NF, REFUSED, OK, OK))
    ],
    "container-collaborator-remove": [
        (C + "/collaborators/remove/", {"username": "collab"}, (LOGIN, NF, REFUSED, OK, OK))
    ],
    "container-route-access": [
        (C + "/routes/{rid}/access/", {"access": "users"}, (LOGIN, NF, REFUSED, OK, OK))
    ],
    "container-action": [
        (C + "/start/", {}, (LOGIN, NF, SAME, SAME, SAME)),  # it is running: a conflict
        (C + "/stop/", {}, (LOGIN, NF, OK, OK, OK)),
        (C + "/restart/", {}, (LOGIN, NF, OK, OK, OK)),
        (C + "/resize/", {"cores": "2", "memory_mib": "512"}, (LOGIN, NF, REFUSED, OK, OK)),
        (
            C + "/request-resize/",
            {"rq-cores": "8", "rq-memory_mib": "512", "reason": "a bigger build for the course"},
            (LOGIN, NF, REFUSED, OK, OK),
        ),
        (C + "/delete/", {"confirm": "app"}, (LOGIN, NF, REFUSED, OK, OK)),
        # It does not expire: nothing to extend, for those who may (a collaborator may not).
        (C + "/extend/", {"days": "5"}, (LOGIN, NF, REFUSED, REFUSED, REFUSED)),
        (C + "/bogus/", {}, (LOGIN, NF, NF, NF, NF)),
    ],
    # A failed create is its owner's to try again or dismiss: nobody else's, staff included.
    "failed-create-action": [
        ("/containers/{fid}/failed/retry/", {}, (LOGIN, NF, NF, OK, NF)),
        ("/containers/{fid}/failed/dismiss/", {}, (LOGIN, NF, NF, OK, NF)),
        ("/containers/{fid}/failed/bogus/", {}, (LOGIN, NF, NF, NF, NF)),
    ],
    # Objects of one's own: nobody else's, staff included, through the GUI.
    "accounts:ssh-key-remove": [("/accounts/ssh-keys/{kid}/remove/", {}, (LOGIN, NF, NF, OK, NF))],
    "accounts:token-revoke": [("/accounts/tokens/{tokid}/revoke/", {}, (LOGIN, NF, NF, OK, NF))],
    "accounts:request-cancel": [("/accounts/requests/{rrid}/cancel/", {}, (LOGIN, NF, NF, OK, NF))],
    # One's own profile: every user acts on themselves only.
    "accounts:account": [("/accounts/", {}, (LOGIN, SAME, SAME, SAME, SAME))],
    "accounts:2fa": [("/accounts/2fa/", {"action": "disable"}, (LOGIN, OK, OK, OK, OK))],
    "accounts:2fa-enrol": [("/accounts/2fa/enrol/", {"code": "000000"}, (LOGIN, OK, OK, OK, OK))],
    "accounts:ssh-keys": [("/accounts/ssh-keys/", {"key": "{newkey}"}, (LOGIN, OK, OK, OK, OK))],
    "accounts:notifications": [
        ("/accounts/notifications/", {"kind_alert": "on"}, (LOGIN, OK, OK, OK, OK)),
        (
            "/accounts/notifications/",
            {"kind_alert": "on", "webhook_url": "http://hooks.example.org/"},
            (LOGIN, REFUSED, REFUSED, REFUSED, REFUSED),  # https only
        ),
    ],
    "accounts:tokens": [
        (
            "/accounts/tokens/",
            {"name": "gui", "scope": "read", "expires_in_days": "90"},
            (LOGIN, OK, OK, OK, OK),
        )
    ],
    "accounts:requests": [
        (
            "/accounts/requests/",
            {"reason": "room for a course project", "max_containers": "9"},
            (LOGIN, OK, OK, SAME, OK),  # the owner has one pending already
        )
    ],
    # Public: logging in and out, the health check. A wrong password changes nothing.
    "accounts:login": [
        ("/accounts/login/", {"username": "owner", "password": "wrong"}, (SAME,) * 5)
    ],
    # A deployment is its owner's (and staff's): a collaborator on its container sees none.
    "deployment-extend": [
        ("/deployments/{dname}/extend/", {"days": "5"}, (LOGIN, NF, NF, OK, OK)),
        ("/deployments/{dname}/extend/", {"days": "9999"}, (LOGIN, NF, NF, REFUSED, REFUSED)),
    ],
    "deployment-destroy": [
        ("/deployments/{dname}/destroy/", {"confirm": "app"}, (LOGIN, NF, NF, OK, OK)),
        ("/deployments/{dname}/destroy/", {"confirm": "nope"}, (LOGIN, NF, NF, REFUSED, REFUSED)),
    ],
    "accounts:login-verify": [("/accounts/login/verify/", {"code": "000000"}, (SAME,) * 5)],
    "accounts:logout": [("/accounts/logout/", {}, (SAME,) * 5)],
    "healthz": [("/healthz", {}, (SAME,) * 5)],
}
# Under these prefixes other suites own the matrix: the API (tests/unit/containers/test_api_matrix.py)
# and Django's admin (staff only as a whole: test_admin_posts_need_staff below).
ELSEWHERE = ("api/", "admin/")
# Rows that count as history, not state: refusals may be audited, sessions come and go.
NOT_STATE = {"accounts.auditentry", "sessions.session", "axes.accessattempt", "axes.accesslog"}
VOLATILE = {"last_login", "updated_at", "last_used_at", "heartbeat_at"}


def _public_key() -> str:
    raw = Ed25519PrivateKey.generate().public_key()
    return raw.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()


@pytest.fixture
def world() -> dict[str, Any]:
    w = make_access_world()
    container, owner = w["container"], w["owner"]
    key = sshkeys.ssh_key_add(user=owner, key=_public_key(), name="laptop")
    token, _ = auth_tokens.token_create(user=owner, name="ci", scope="read")
    return {
        "cid": container.pk,
        "tid": w["site"].templates.get().pk,
        "rid": container.routes.get().pk,
        "kid": key.pk,
        "tokid": token.pk,
        "rrid": w["request"].pk,
        "newkey": _public_key(),
        "fid": make_failed_create(owner, "broken", w["site"]).pk,
        "dname": Deployment.objects.create(
            owner=owner,
            repository="acme/app",
            ref="main",
            name="app",
            container=container,
            commit="a" * 40,
            app={"start": "x"},
        ).name,
    }


def snapshot() -> str:
    """A digest of every row that is state (not history) in the portal's own apps."""
    rows = []
    for model in apps.get_models():
        label = model._meta.label_lower
        if label in NOT_STATE or model._meta.app_label not in (
            "accounts",
            "containers",
            "networking",
            "auth",
            "otp_totp",
            "otp_static",
        ):
            continue
        fields = [f.attname for f in model._meta.concrete_fields if f.attname not in VOLATILE]
        rows.append(
            (
                label,
                sorted(
                    json.dumps(r, default=str, sort_keys=True)
                    for r in model.objects.values(*fields)
                ),
            )
        )
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


def client_for(role: str, **kwargs: Any) -> Client:
    client = Client(**kwargs)
    if role != "anonymous":
        client.force_login(User.objects.get(username=role))
    return client


CASES = [
    (name, path, body, outcome) for name, rows in MATRIX.items() for path, body, outcome in rows
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("name", "path", "body", "outcomes"), CASES, ids=[c[1] for c in CASES])
def test_gui_post_per_caller(world, role, name, path, body, outcomes) -> None:
    url = path.format(**world)
    data = {k: v.format(**world) for k, v in body.items()}
    client = client_for(role)
    before = snapshot()
    response = client.post(url, data)
    after = snapshot()
    want = outcomes[ROLES.index(role)]
    seen = (role, url, response.status_code, response.get("Location"))
    if response.status_code >= 500:
        count_5xx()
    assert response.status_code < 500, seen
    if want == LOGIN:
        assert response.status_code == 302 and response["Location"].startswith(
            "/accounts/login/"
        ), seen
    elif want == NF:
        assert response.status_code == 404, seen
    else:
        # 400: a form error at the field; 401: a wrong password
        assert response.status_code in (200, 302, 400, 401), seen
        if want != SAME:  # logging out, or a verify without a login, goes to the login page
            assert not response.get("Location", "").startswith("/accounts/login/"), seen
    if want in (LOGIN, NF, REFUSED, SAME):
        assert after == before, f"{role} changed the database through POST {url}"
    else:
        assert want == OK


def _walk(patterns: list[Any], prefix: str = "", ns: str = "") -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for p in patterns:
        if isinstance(p, URLResolver):
            inner = f"{ns}{p.namespace}:" if p.namespace else ns
            out += _walk(p.url_patterns, prefix + str(p.pattern), inner)
        elif isinstance(p, URLPattern):
            out.append((prefix + str(p.pattern), f"{ns}{p.name}" if p.name else prefix))
    return out


def _sample(route: str) -> str:
    """A concrete path for a route pattern (ids that exist for nobody)."""
    import re

    path = re.sub(r"<int:[^>]+>", "999999", route)
    path = re.sub(r"<(?:slug:|str:)?[^>]+>", "x", path)
    return "/" + path.lstrip("^").rstrip("$")


def test_every_post_view_is_in_the_matrix(world) -> None:
    """A view outside the matrix must refuse POST (405) even to staff."""
    staff = client_for("staff")
    missing = []
    routes = _walk(get_resolver().url_patterns)
    assert len(routes) > 10
    for route, name in routes:
        if route.startswith(ELSEWHERE) or name in MATRIX:
            continue
        response = staff.post(_sample(route), {})
        if response.status_code != 405:
            missing.append(f"{name} ({route}): POST gives {response.status_code}")
    assert not missing, "POST views missing from MATRIX:\n" + "\n".join(missing)
    assert set(MATRIX) <= {name for _, name in routes}, "MATRIX names a view that is gone"


@pytest.mark.parametrize(("name", "path", "body", "outcomes"), CASES, ids=[c[1] for c in CASES])
def test_gui_posts_need_csrf(world, name, path, body, outcomes) -> None:
    """Without its CSRF token, a POST from a logged-in browser is refused and changes nothing."""
    client = client_for("owner", enforce_csrf_checks=True)
    before = snapshot()
    response = client.post(path.format(**world), {k: v.format(**world) for k, v in body.items()})
    assert response.status_code == 403, (path, response.status_code)
    assert snapshot() == before


@pytest.mark.parametrize("role", ["anonymous", "other", "owner"])
def test_admin_posts_need_staff(world, role) -> None:
    before = snapshot()
    response = client_for(role).post(
        f"/admin/containers/container/{world['cid']}/delete/", {"post": "yes"}
    )
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert snapshot() == before
