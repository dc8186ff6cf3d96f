"""Every endpoint, every kind of caller: anonymous, another user, a collaborator, the owner,
staff, and the owner's read- and write-scoped tokens. Others' objects are 404, never 403;
every response is checked against the OpenAPI document."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from auth import tokens as auth_tokens
from containers.metrics.models import AlertKind, ContainerAlert
from tests.api_contract import check
from tests.factories import make_access_world

pytestmark = pytest.mark.django_db

ROLES = ("anonymous", "other", "collab", "owner", "staff", "read_token", "write_token")

# (method, path template, body): expected status per role, in ROLES order.
C = "/api/v1/containers/{cid}"
MATRIX: list[tuple[str, str, dict[str, Any] | None, tuple[int, ...]]] = [
    ("get", "/api/v1/containers/", None, (401, 200, 200, 200, 200, 200, 200)),
    (
        "post",
        "/api/v1/containers/",
        {"hostname": "fresh", "template": "debian-12"},
        (401, 202, 202, 202, 202, 403, 202),
    ),
    ("get", C + "/", None, (401, 404, 200, 200, 200, 200, 200)),
    ("patch", C + "/", {"cores": 2}, (401, 404, 403, 202, 202, 403, 202)),
    ("delete", C + "/", None, (401, 404, 403, 202, 202, 403, 202)),
    ("post", C + "/start/", None, (401, 404, 409, 409, 409, 403, 409)),  # it is running
    ("post", C + "/stop/", None, (401, 404, 202, 202, 202, 403, 202)),
    ("post", C + "/restart/", None, (401, 404, 202, 202, 202, 403, 202)),
    # It does not expire: nothing to extend (409), for those who may.
    ("post", C + "/extend/", {"days": 1}, (401, 404, 403, 409, 409, 403, 409)),
    ("get", C + "/collaborators/", None, (401, 404, 200, 200, 200, 200, 200)),
    ("post", C + "/collaborators/", {"username": "bystander"}, (401, 404, 403, 202, 202, 403, 202)),
    ("delete", C + "/collaborators/collab/", None, (401, 404, 403, 202, 202, 403, 202)),
    ("get", C + "/routes/", None, (401, 404, 200, 200, 200, 200, 200)),
    (
        "post",
        C + "/routes/",
        {"name": "api", "backend_port": 8080},
        (401, 404, 403, 201, 201, 403, 201),
    ),
    ("patch", C + "/routes/{rid}/", {"access": "users"}, (401, 404, 403, 200, 200, 403, 200)),
    ("get", C + "/ports/", None, (401, 404, 200, 200, 200, 200, 200)),
    (
        "post",
        C + "/ports/",
        {"name": "web", "container_port": 8443},
        (401, 404, 403, 201, 201, 403, 201),
    ),
    ("get", "/api/v1/jobs/", None, (401, 200, 200, 200, 200, 200, 200)),
    ("get", "/api/v1/jobs/{jid}/", None, (401, 404, 200, 200, 200, 200, 200)),
    ("get", "/api/v1/jobs/{jid}/log/", None, (401, 404, 200, 200, 200, 200, 200)),
    ("get", "/api/v1/alerts/", None, (401, 200, 200, 200, 200, 200, 200)),
    ("get", "/api/v1/alerts/?state=all", None, (401, 200, 200, 200, 200, 200, 200)),
    ("get", "/api/v1/alerts/{aid}/", None, (401, 404, 200, 200, 200, 200, 200)),
    ("get", "/api/v1/templates/", None, (401, 200, 200, 200, 200, 200, 200)),
    ("get", "/api/v1/sites/", None, (401, 200, 200, 200, 200, 200, 200)),
    ("get", "/api/v1/nodes/", None, (401, 403, 403, 403, 200, 403, 403)),
    ("get", "/api/v1/me/", None, (401, 200, 200, 200, 200, 200, 200)),
    ("get", "/api/v1/me/notifications/", None, (401, 200, 200, 200, 200, 200, 200)),
    (
        "patch",
        "/api/v1/me/notifications/",
        {"kinds": {"alert": False}},
        (401, 200, 200, 200, 200, 403, 200),
    ),
    ("get", "/api/v1/tokens/", None, (401, 200, 200, 200, 200, 200, 200)),
    (
        "post",
        "/api/v1/tokens/",
        {"name": "more", "scope": "read"},
        (401, 201, 201, 201, 201, 403, 403),
    ),  # tokens are made from a session, never by a token
    ("get", "/api/v1/resource-requests/", None, (401, 200, 200, 200, 200, 200, 200)),
    (
        "post",
        "/api/v1/resource-requests/",
        {"kind": "quota", "reason": "a course needs more room", "limits": {"max_containers": 9}},
        (401, 201, 201, 409, 201, 403, 409),
    ),  # the owner has one pending
    ("post", "/api/v1/resource-requests/{rrid}/approve/", {}, (401, 404, 404, 403, 200, 403, 403)),
    ("post", "/api/v1/resource-requests/{rrid}/deny/", {}, (401, 404, 404, 403, 200, 403, 403)),
    ("get", "/api/v1/audit/", None, (401, 403, 403, 403, 200, 403, 403)),
]


@pytest.fixture
def world() -> dict[str, Any]:
    w = make_access_world()
    now = timezone.now()
    alert = ContainerAlert.objects.create(
        container=w["container"], kind=AlertKind.CPU, since=now, raised_at=now, value=1.0
    )
    return {
        "aid": alert.pk,
        "cid": w["container"].pk,
        "jid": w["job"].pk,
        "rid": w["container"].routes.get().pk,
        "rrid": w["request"].pk,
    }


def client_for(role: str) -> Client:
    if role == "anonymous":
        return Client()
    if role.endswith("_token"):
        scope = role.split("_")[0]
        _, token = auth_tokens.token_create(
            user=User.objects.get(username="owner"), name=role, scope=scope, expires_in_days=7
        )
        return Client(headers={"Authorization": f"Bearer {token}"})
    client = Client()
    client.force_login(User.objects.get(username=role))
    return client


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    ("method", "path", "body", "expected"),
    MATRIX,
    ids=[f"{m.upper()} {p}" for m, p, _, _ in MATRIX],
)
def test_status_per_caller(world, role, method, path, body, expected) -> None:
    url = path.format(**world)
    response = check(
        getattr(client_for(role), method)(url, body, content_type="application/json")
        if body is not None
        else getattr(client_for(role), method)(url)
    )
    want = expected[ROLES.index(role)]
    assert response.status_code == want, (
        role,
        method,
        url,
        response.status_code,
        response.content[:300],
    )
    if want >= 400:
        assert set(response.json()) == {"code", "message", "detail"}
