"""Who may do what through the API: anonymous, another user, collaborator, owner, staff,
and read- and write-scoped tokens. Others' objects are 404, never 403."""

from __future__ import annotations

import pytest
from django.test import Client

from auth import tokens as auth_tokens
from auth.models import ApiToken, Collaborator
from containers import services
from tests.api_contract import check
from tests.factories import UserFactory, make_site

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    site = make_site(None)
    owner = UserFactory(username="owner")
    collab = UserFactory(username="collab")
    UserFactory(username="other")
    UserFactory(username="root", is_staff=True)
    job = services.container_create(owner=owner, hostname="app", template=site.templates.get())
    container = job.container
    Collaborator.objects.create(container=container, user=collab, added_by=owner)
    # Settle the create so that start/stop are legal actions.
    services.container_set_status(container=container, to="provisioning")
    services.container_set_status(container=container, to="running")
    job.status = "succeeded"
    job.save(update_fields=["status"])
    return container


def session(username: str | None) -> Client:
    client = Client()
    if username:
        from django.contrib.auth.models import User

        client.force_login(User.objects.get(username=username))
    return client


def bearer(username: str, scope: str) -> Client:
    from django.contrib.auth.models import User

    _, plaintext = auth_tokens.token_create(
        user=User.objects.get(username=username), name=f"t-{scope}", scope=scope, expires_in_days=30
    )
    return Client(headers={"Authorization": f"Bearer {plaintext}"})


@pytest.mark.parametrize(
    ("who", "get", "stop", "delete"),
    [
        ("anonymous", 401, 401, 401),
        ("other", 404, 404, 404),
        ("collab", 200, 202, 403),
        ("owner", 200, 202, 202),
        ("root", 200, 202, 202),
        ("owner-read-token", 200, 403, 403),
        ("owner-write-token", 200, 202, 202),
        ("other-write-token", 404, 404, 404),
    ],
)
def test_each_caller_gets_the_right_status(world, who, get, stop, delete) -> None:
    if who == "anonymous":
        client = Client()
    elif who.endswith("-token"):
        user, scope, _ = who.split("-")
        client = bearer(user, scope)
    else:
        client = session(who)
    cid = world.pk
    assert check(client.get(f"/api/v1/containers/{cid}/")).status_code == get
    assert check(client.post(f"/api/v1/containers/{cid}/stop/")).status_code == stop
    if stop == 202:  # let the next action through: one job at a time
        world.jobs.filter(status="queued").update(status="cancelled")
    assert check(client.delete(f"/api/v1/containers/{cid}/")).status_code == delete


def test_anonymous_401_says_how_to_authenticate(world) -> None:
    response = Client().get("/api/v1/containers/")
    assert response.status_code == 401
    assert "Bearer" in response["WWW-Authenticate"]
    assert response.json()["code"] == "not_authenticated"


def test_token_is_shown_once_and_stored_hashed(world) -> None:
    client = session("owner")
    created = check(
        client.post(
            "/api/v1/tokens/",
            {"name": "ci", "scope": "write", "expires_in_days": 7},
            content_type="application/json",
        )
    )
    assert created.status_code == 201
    plaintext = created.json()["token"]
    row = ApiToken.objects.get(pk=created.json()["id"])
    assert plaintext not in (row.token_hash, row.prefix) and plaintext not in str(row.__dict__)
    listed = check(client.get("/api/v1/tokens/")).content.decode()
    assert plaintext not in listed and "ci" in listed
    api = Client(headers={"Authorization": f"Bearer {plaintext}"})
    assert check(api.get("/api/v1/me/")).json()["username"] == "owner"
    assert check(client.delete(f"/api/v1/tokens/{row.pk}/")).json()["active"] is False
    assert check(api.get("/api/v1/me/")).status_code == 401


def test_me_reports_quota_and_keys(world) -> None:
    body = check(session("owner").get("/api/v1/me/")).json()
    assert body["username"] == "owner" and body["quota"]["usage"]["containers"] == 1
    assert set(body) >= {"groups", "quota", "ssh_keys", "otp_enrolled"}


def test_collaborators_through_the_api(world) -> None:
    owner = session("owner")
    cid = world.pk
    assert check(owner.get(f"/api/v1/containers/{cid}/collaborators/")).json() == {
        "collaborators": ["collab"]
    }
    added = check(
        owner.post(
            f"/api/v1/containers/{cid}/collaborators/",
            {"username": "other"},
            content_type="application/json",
        )
    )
    assert added.status_code == 202 and added.json()["job"]["kind"] == "access"
    assert (
        check(
            session("collab").post(
                f"/api/v1/containers/{cid}/collaborators/",
                {"username": "root"},
                content_type="application/json",
            )
        ).status_code
        == 403
    )
    world.jobs.filter(status="queued").update(status="cancelled")
    removed = check(owner.delete(f"/api/v1/containers/{cid}/collaborators/other/"))
    assert removed.status_code == 202


def test_resource_request_flow(world) -> None:
    owner = session("owner")
    made = check(
        owner.post(
            "/api/v1/resource-requests/",
            {
                "kind": "quota",
                "reason": "a course needs ten containers",
                "limits": {"max_containers": 10},
            },
            content_type="application/json",
        )
    )
    assert made.status_code == 201 and made.json()["status"] == "pending"
    rid = made.json()["id"]
    assert (
        check(
            owner.post(
                f"/api/v1/resource-requests/{rid}/approve/", {}, content_type="application/json"
            )
        ).status_code
        == 403
    )
    assert check(session("other").get(f"/api/v1/resource-requests/{rid}/")).status_code == 404
    approved = check(
        session("root").post(
            f"/api/v1/resource-requests/{rid}/approve/",
            {"note": "ok"},
            content_type="application/json",
        )
    )
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    assert check(owner.get(f"/api/v1/resource-requests/{rid}/")).json()["outcome"]


def test_audit_is_staff_only(world) -> None:
    assert check(session("owner").get("/api/v1/audit/")).status_code == 403
    entries = check(session("root").get("/api/v1/audit/")).json()["results"]
    assert any(e["action"].startswith("container.") for e in entries)
