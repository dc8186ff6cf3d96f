"""SSH keys kept in the portal: checked, passed to new containers, written to the directory.

The cases against a real directory (slapd); the others are in
tests/unit/accounts/test_sshkeys.py.
"""

from __future__ import annotations

import pytest

from auth import sshkeys
from auth.models import SshKey
from auth.tasks import sync_ssh_keys
from tests.functional.accounts.slapd import PEOPLE
from tests.unit.accounts.test_sshkeys import ED25519

pytestmark = pytest.mark.django_db


@pytest.mark.ldap
def test_keys_are_written_to_the_directorys_sshpublickey(ldap_users, slapd) -> None:
    bob = ldap_users["bob"]
    sshkeys.ssh_key_add(user=bob, key=ED25519)  # committed at the end of the test's atomic...
    sync_ssh_keys(bob.pk)  # ...so run the task the commit would have queued
    entry = slapd.search(f"uid=bob,{PEOPLE}", attrs=["sshPublicKey"])[0]
    assert [v.decode() if isinstance(v, bytes) else v for v in entry["sshPublicKey"]] == [ED25519]
    sshkeys.ssh_key_remove(key=SshKey.objects.get(user=bob), actor=bob)
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
