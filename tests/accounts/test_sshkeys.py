"""SSH keys kept in the portal: checked, passed to new containers, written to the directory."""

from __future__ import annotations

import base64
import hashlib

import pytest

from auth import services as accounts
from auth.models import AuditEntry, SshKey
from auth.tasks import sync_ssh_keys
from containers import services
from portal.errors import Conflict, ValidationFailed
from tests.accounts.slapd import PEOPLE
from tests.factories import UserFactory, make_site

pytestmark = pytest.mark.django_db

ED25519 = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl bob@laptop"
)
ED25519_2 = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHrY8kzJkVQ0c1p7r9rKk4zQb8m5Y0sJdV0kzvXo7h3W bob@desk"
)


def fingerprint(key: str) -> str:
    raw = base64.b64decode(key.split()[1])
    return base64.b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")


def test_a_key_is_checked_and_kept(db) -> None:
    bob = UserFactory(username="bob")
    key = accounts.ssh_key_add(user=bob, key=f"  {ED25519}  ")
    assert key.key == ED25519 and key.name == "bob@laptop"
    assert key.fingerprint == fingerprint(ED25519)  # as `ssh-keygen -l` prints it (SHA256:...)
    assert AuditEntry.objects.get(action="sshkey.add").actor == bob


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not a key", "unsupported SSH key type"),
        ("ssh-ed25519", "looks like 'ssh-ed25519 AAAA... comment'"),
        ("ssh-ed25519 !!!notbase64 x", "not valid base64"),
        (
            "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
            "is a 'ssh-ed25519' key",
        ),
        ("ssh-dss AAAAB3NzaC1kc3M= old", "unsupported SSH key type 'ssh-dss'"),
        (f"{ED25519}\n{ED25519_2}", "one key at a time"),
    ],
)
def test_wrong_keys_are_rejected_with_a_clear_message(db, text, message) -> None:
    with pytest.raises(ValidationFailed, match=message.replace("(", r"\(").replace(".", r"\.")):
        accounts.ssh_key_add(user=UserFactory(), key=text)
    assert not SshKey.objects.exists()


def test_the_same_key_twice_is_a_conflict(db) -> None:
    bob = UserFactory()
    accounts.ssh_key_add(user=bob, key=ED25519)
    with pytest.raises(Conflict, match="already in the profile"):
        accounts.ssh_key_add(user=bob, key=ED25519.replace("bob@laptop", "other comment"))


def test_profile_keys_go_to_new_containers(db) -> None:
    site = make_site()
    bob = UserFactory(username="bob")
    accounts.ssh_key_add(user=bob, key=ED25519)
    accounts.ssh_key_add(user=bob, key=ED25519_2)
    c = services.container_create(
        owner=bob, hostname="web", template=site.templates.get()
    ).container
    assert c.ssh_public_keys.splitlines() == [ED25519, ED25519_2]
    # Keys given with the request win over the profile's.
    c2 = services.container_create(
        owner=bob, hostname="web2", template=site.templates.get(), ssh_public_keys=ED25519_2
    ).container
    assert c2.ssh_public_keys == ED25519_2


@pytest.mark.ldap
def test_keys_are_written_to_the_directorys_sshpublickey(ldap_users, slapd) -> None:
    bob = ldap_users["bob"]
    accounts.ssh_key_add(user=bob, key=ED25519)  # committed at the end of the test's atomic...
    sync_ssh_keys(bob.pk)  # ...so run the task the commit would have queued
    entry = slapd.search(f"uid=bob,{PEOPLE}", attrs=["sshPublicKey"])[0]
    assert [v.decode() if isinstance(v, bytes) else v for v in entry["sshPublicKey"]] == [ED25519]
    accounts.ssh_key_remove(key=SshKey.objects.get(user=bob), actor=bob)
    assert sync_ssh_keys(bob.pk) == "wrote 0 SSH key(s) for bob"
    assert (
        slapd.search(f"uid=bob,{PEOPLE}", attrs=["sshPublicKey"])[0].get("sshPublicKey", []) == []
    )


@pytest.mark.ldap
def test_a_directory_down_makes_the_key_task_retry(ldap_users, settings) -> None:
    from celery.exceptions import Retry

    from portal.procs import free_port

    bob = ldap_users["bob"]
    settings.AUTH_LDAP_SERVER_URI = f"ldap://127.0.0.1:{free_port()}"
    with pytest.raises(Retry):
        sync_ssh_keys.apply(args=(bob.pk,), throw=True).get()
