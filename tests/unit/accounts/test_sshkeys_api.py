"""The SSH keys of one's profile over the API (`portalctl keys`), and the container list's
`vmid` filter (`portalctl` takes a VMID wherever it takes a name)."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client

from auth import tokens as auth_tokens
from auth.models import AuditEntry, SshKey
from containers import services
from tests.api_contract import check
from tests.factories import UserFactory, make_site
from tests.unit.accounts.test_sshkeys import ED25519, ED25519_2

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _throttles():
    cache.clear()
    yield
    cache.clear()


def call(token: str, method: str, path: str, body: dict | None = None):
    client = Client()
    kwargs = {"content_type": "application/json", "data": body} if body is not None else {}
    return check(
        getattr(client, method)(path, headers={"Authorization": f"Bearer {token}"}, **kwargs)
    )


def test_keys_are_listed_added_and_removed_for_the_caller_only() -> None:
    bob, eve = UserFactory(username="bob"), UserFactory(username="eve")
    _, bob_token = auth_tokens.token_create(user=bob, name="cli", scope="write")
    _, eve_token = auth_tokens.token_create(user=eve, name="cli", scope="write")

    added = call(bob_token, "post", "/api/v1/ssh-keys/", {"key": ED25519})
    assert added.status_code == 201, added.json()
    assert added.json()["name"] == "bob@laptop" and added.json()["key"] == ED25519
    assert AuditEntry.objects.filter(action="sshkey.add").count() == 1
    again = call(bob_token, "post", "/api/v1/ssh-keys/", {"key": ED25519, "name": "x"})
    assert again.status_code == 409 and again.json()["code"] == "duplicate_key"
    bad = call(bob_token, "post", "/api/v1/ssh-keys/", {"key": "ssh-dss AAAA x"})
    assert bad.status_code == 400 and "key" in bad.json()["detail"]
    call(eve_token, "post", "/api/v1/ssh-keys/", {"key": ED25519_2, "name": "eve's"})

    listed = call(bob_token, "get", "/api/v1/ssh-keys/").json()
    assert [k["fingerprint"] for k in listed["results"]] == [added.json()["fingerprint"]]
    key_id = added.json()["id"]
    # Another user's key is not there for eve to see or remove.
    assert call(eve_token, "get", f"/api/v1/ssh-keys/{key_id}/").status_code == 404
    assert call(eve_token, "delete", f"/api/v1/ssh-keys/{key_id}/").status_code == 404
    assert call(bob_token, "delete", f"/api/v1/ssh-keys/{key_id}/").status_code == 204
    assert not SshKey.objects.filter(user=bob).exists()
    assert SshKey.objects.filter(user=eve).count() == 1


def test_a_read_token_lists_keys_but_does_not_change_them() -> None:
    bob = UserFactory(username="bob")
    _, token = auth_tokens.token_create(user=bob, name="ro", scope="read")
    assert call(token, "get", "/api/v1/ssh-keys/").status_code == 200
    refused = call(token, "post", "/api/v1/ssh-keys/", {"key": ED25519})
    assert refused.status_code == 403 and refused.json()["code"] == "token_scope"


def test_containers_are_found_by_vmid() -> None:
    site = make_site()
    owner = UserFactory(username="alice")
    _, token = auth_tokens.token_create(user=owner, name="cli", scope="read")
    jobs = [
        services.container_create(owner=owner, hostname=h, template=site.templates.get())
        for h in ("one", "two")
    ]
    vmid = jobs[1].container.vmid
    found = call(token, "get", f"/api/v1/containers/?vmid={vmid}").json()["results"]
    assert [c["hostname"] for c in found] == ["two"]
    assert call(token, "get", "/api/v1/containers/?vmid=abc").status_code == 400
    assert call(token, "get", "/api/v1/containers/?vmid=99999999999999").status_code == 400
