"""API tokens on the real REST API: Bearer authentication, scopes, expiry, revocation,
hashing, throttling, and a token never doing more than its user."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.utils import timezone

from auth import tokens as auth_tokens
from auth.models import ApiToken, AuditEntry
from containers import services
from portal.errors import ValidationFailed
from tests.api_contract import check
from tests.factories import UserFactory, make_site

pytestmark = pytest.mark.django_db


@pytest.fixture
def site():
    cache.clear()  # the throttles count in the cache
    yield make_site()
    cache.clear()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def api(token: str, method: str = "get", path: str = "/api/v1/containers/", **kw):
    client = Client(REMOTE_ADDR="192.0.2.44")
    if method != "get":
        kw.setdefault("content_type", "application/json")
    return getattr(client, method)(path, headers=bearer(token), **kw)


def test_a_token_is_shown_once_and_only_its_hash_is_kept(site) -> None:
    bob = UserFactory(username="bob")
    token, plain = auth_tokens.token_create(user=bob, name="ci", scope="read", expires_in_days=30)
    assert plain.startswith(f"cpt_{token.prefix}_") and len(plain) > 40
    assert token.token_hash == hashlib.sha256(plain.encode()).hexdigest()
    secret = plain.split("_", 2)[2]
    # Nowhere in the database: every text column of every table is searched.
    with connection.cursor() as cur:
        for table in connection.introspection.table_names():
            cur.execute(f'SELECT * FROM "{table}"')  # table names come from the schema
            for row in cur.fetchall():
                assert not any(isinstance(v, str) and secret in v for v in row), table
    assert (timezone.now() + timedelta(days=30) - token.expires_at) < timedelta(minutes=1)
    entry = AuditEntry.objects.get(action="token.create")
    assert secret not in str(entry.changes) and secret not in entry.summary


def test_bearer_authenticates_and_records_the_last_use(site) -> None:
    bob = UserFactory(username="bob")
    token, plain = auth_tokens.token_create(user=bob, name="cli")
    response = api(plain)
    assert response.status_code == 200, response.content
    token.refresh_from_db()
    assert token.last_used_ip == "192.0.2.44" and token.last_used_at is not None


def test_scope_read_may_only_read_and_write_may_write(site) -> None:
    bob = UserFactory(username="bob")
    _, read = auth_tokens.token_create(user=bob, name="r", scope="read")
    _, write = auth_tokens.token_create(user=bob, name="w", scope="write")
    body = {"hostname": "web", "template": "debian-12"}
    refused = api(read, "post", data=body)
    assert refused.status_code == 403
    assert "read-only" in refused.json()["message"]
    assert api(read).status_code == 200
    created = api(write, "post", data=body)
    assert created.status_code == 202, created.content


def test_expired_revoked_and_malformed_tokens_are_refused(site) -> None:
    bob = UserFactory(username="bob")
    token, plain = auth_tokens.token_create(user=bob, name="old", expires_in_days=7)
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = api(plain)
    assert response.status_code == 401 and "expired" in response.json()["message"]
    assert response["WWW-Authenticate"].startswith("Bearer")

    token, plain = auth_tokens.token_create(user=bob, name="gone", expires_in_days=None)
    assert token.expires_at is None
    assert api(plain).status_code == 200
    auth_tokens.token_revoke(token=token, actor=bob)
    response = api(plain)
    assert response.status_code == 401 and "revoked" in response.json()["message"]
    assert AuditEntry.objects.filter(action="token.revoke").count() == 1

    assert api("cpt_nope_nope").status_code == 401
    assert api(plain[:-1] + ("A" if plain[-1] != "A" else "B")).status_code == 401
    assert api("garbage").status_code == 401


def test_token_choices_are_checked(site) -> None:
    bob = UserFactory()
    with pytest.raises(ValidationFailed, match="7, 30, 90 or 365"):
        auth_tokens.token_create(user=bob, name="x", expires_in_days=5)
    with pytest.raises(ValidationFailed, match="read or write"):
        auth_tokens.token_create(user=bob, name="x", scope="admin")
    with pytest.raises(ValidationFailed, match="name"):
        auth_tokens.token_create(user=bob, name="  ")


def test_tokens_are_throttled(site, settings) -> None:
    settings.API_TOKEN_THROTTLE_RATE = "3/minute"
    bob = UserFactory()
    _, plain = auth_tokens.token_create(user=bob, name="busy")
    _, other = auth_tokens.token_create(user=bob, name="calm")
    assert [api(plain).status_code for _ in range(4)] == [200, 200, 200, 429]
    assert api(other).status_code == 200  # per token


def test_a_token_never_does_more_than_its_user(site) -> None:
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    theirs = services.container_create(
        owner=alice, hostname="hers", template=site.templates.get()
    ).container
    _, plain = auth_tokens.token_create(user=bob, name="w", scope="write")
    assert api(plain).json()["count"] == 0
    assert api(plain, path=f"/api/v1/containers/{theirs.pk}/").status_code == 404
    assert api(plain, "delete", path=f"/api/v1/containers/{theirs.pk}/").status_code == 404
    assert api(plain, "post", path=f"/api/v1/containers/{theirs.pk}/stop/").status_code == 404
    assert api(plain, path="/api/v1/nodes/").status_code == 403  # staff only
    # As the user changes, so does the token: never cached, never more.
    bob.is_staff = True
    bob.save()
    assert api(plain).json()["count"] == 1
    bob.is_active = False
    bob.save()
    assert api(plain).status_code == 401


def test_tokens_are_not_subject_to_2fa(site, settings) -> None:
    settings.OTP_REQUIRED_FOR_STAFF = True
    ops = UserFactory(username="ops", is_staff=True)
    _, plain = auth_tokens.token_create(user=ops, name="automation")
    assert api(plain).status_code == 200
    session = Client()
    session.force_login(ops)
    assert session.get("/api/v1/containers/").json()["code"] == "otp_required"


def test_only_the_owner_or_staff_revokes(site) -> None:
    bob, eve = UserFactory(), UserFactory()
    token, _ = auth_tokens.token_create(user=bob, name="mine")
    from portal.errors import NotFound

    with pytest.raises(NotFound):
        auth_tokens.token_revoke(token=token, actor=eve)
    auth_tokens.token_revoke(token=token, actor=UserFactory(is_staff=True))
    token.refresh_from_db()
    assert token.revoked_at is not None


# -- token management needs a session: a token cannot mint, list or revoke its siblings ------
def session_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("scope", ["write", "read"])
@pytest.mark.parametrize("expiry", [None, 365, 7])
def test_a_token_cannot_mint_a_token(site, scope, expiry) -> None:
    bob = UserFactory()
    parent, plain = auth_tokens.token_create(user=bob, name="ci", scope=scope, expires_in_days=7)
    response = check(
        api(plain, "post", "/api/v1/tokens/", data={"name": "forever", "expires_in_days": expiry})
    )
    assert response.status_code == 403, response.content
    body = response.json()
    assert body["code"] == "token_needs_session" and "session" in body["message"]
    assert list(ApiToken.objects.filter(user=bob)) == [parent]
    assert not AuditEntry.objects.filter(action="token.create").exclude(object_id=parent.pk)


def test_a_session_still_makes_tokens(site) -> None:
    bob = UserFactory()
    response = check(
        session_client(bob).post(
            "/api/v1/tokens/",
            {"name": "laptop", "scope": "write", "expires_in_days": None},
            content_type="application/json",
        )
    )
    assert response.status_code == 201, response.content
    assert response.json()["token"].startswith("cpt_")


def test_a_token_sees_only_itself(site) -> None:
    bob = UserFactory()
    mine, plain = auth_tokens.token_create(user=bob, name="ci", scope="read")
    sibling, _ = auth_tokens.token_create(user=bob, name="laptop", scope="write")
    listed = check(api(plain, path="/api/v1/tokens/"))
    assert listed.status_code == 200
    assert [t["id"] for t in listed.json()["results"]] == [mine.pk]
    assert check(api(plain, path=f"/api/v1/tokens/{mine.pk}/")).json()["prefix"] == mine.prefix
    other = check(api(plain, path=f"/api/v1/tokens/{sibling.pk}/"))
    assert other.status_code == 403 and other.json()["code"] == "token_needs_session"
    # A session sees them all.
    both = check(session_client(bob).get("/api/v1/tokens/")).json()["results"]
    assert {t["id"] for t in both} == {mine.pk, sibling.pk}


@pytest.mark.parametrize("scope", ["read", "write"])
def test_a_token_revokes_itself_and_nothing_else(site, scope) -> None:
    """What a CLI's logout does; a read token may too (it only takes access away)."""
    bob = UserFactory()
    mine, plain = auth_tokens.token_create(user=bob, name="cli", scope=scope)
    sibling, sibling_plain = auth_tokens.token_create(user=bob, name="ci", scope="write")
    refused = check(api(plain, "delete", f"/api/v1/tokens/{sibling.pk}/"))
    assert refused.status_code == 403 and refused.json()["code"] == "token_needs_session"
    sibling.refresh_from_db()
    assert sibling.revoked_at is None
    done = check(api(plain, "delete", f"/api/v1/tokens/{mine.pk}/"))
    assert done.status_code == 200 and done.json()["active"] is False
    assert api(plain).status_code == 401
    assert api(sibling_plain).status_code == 200
    entry = AuditEntry.objects.get(action="token.revoke")
    assert entry.object_id == str(mine.pk)


def test_the_schema_says_token_management_needs_a_session() -> None:
    from tests.api_contract import openapi

    spec = openapi().spec
    create = spec / "paths" / "/api/v1/tokens/" / "post"
    assert "session" in (create / "description").read_str() and "403" in (create / "responses")
    destroy = spec / "paths" / "/api/v1/tokens/{id}/" / "delete"
    assert "itself" in (destroy / "description").read_str()
