"""The ldap3 directory service against the real slapd: groups, SSH keys, errors, timeouts."""

from __future__ import annotations

import time

import pytest

from auth import directory as dirmod
from auth.directory import DirectoryError, DirectoryUnavailable, get_directory
from portal.procs import free_port
from tests.functional.accounts.slapd import CONTAINERS, PEOPLE

pytestmark = pytest.mark.ldap

ED25519 = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop"
)


def test_access_group_is_created_updated_and_removed(ldap_settings, slapd) -> None:
    d = get_directory()
    change = d.group_sync(
        "ct-web", container_id=7, members=["alice", "bob", "ghost"], description="web (CT 101)"
    )
    assert change.created and change.added == ["alice", "bob"] and change.missing == ["ghost"]
    group = slapd.group("ct-web")
    assert group["dn"] == f"cn=ct-web,{CONTAINERS}"
    assert sorted(group["memberUid"]) == ["alice", "bob"]
    assert group["gidNumber"] == 200007
    assert "posixGroup" in group["objectClass"]
    assert d.group_get("ct-web").container_id == 7

    change = d.group_sync("ct-web", container_id=7, members=["alice"], description="web (CT 101)")
    assert not change.created and change.removed == ["bob"] and change.added == []
    assert slapd.group("ct-web")["memberUid"] == ["alice"]

    change = d.group_sync("ct-web", container_id=7, members=[], description="web (CT 101)")
    assert slapd.group("ct-web").get("memberUid", []) == []

    assert d.group_delete("ct-web") is True
    assert slapd.group("ct-web") is None
    assert d.group_delete("ct-web") is False  # already gone: harmless


def test_group_of_names_groups_fill_member_of(ldap_settings, slapd) -> None:
    ldap_settings.LDAP_CONTAINER_GROUP_TYPE = "groupOfNames"
    d = get_directory()
    d.group_sync("ct-db", container_id=3, members=["carol"], description="db")
    group = slapd.group("ct-db")
    assert group["member"] == [f"uid=carol,{PEOPLE}"]
    # The memberOf overlay: what an SSSD ldap_access_filter of (memberOf=...) matches.
    carol = slapd.search(f"uid=carol,{PEOPLE}", attrs=["memberOf"])[0]
    assert f"cn=ct-db,{CONTAINERS}" in carol["memberOf"]
    d.group_sync("ct-db", container_id=3, members=[], description="db")
    assert slapd.group("ct-db")["member"] == [
        f"cn=ct-db,{CONTAINERS}"
    ]  # an empty group names itself


def test_ssh_keys_are_written_to_the_directory(ldap_settings, slapd) -> None:
    d = get_directory()
    assert d.supports_ssh_keys()
    assert d.ssh_keys_set("alice", [ED25519]) is True
    entry = slapd.search(f"uid=alice,{PEOPLE}", attrs=["sshPublicKey", "objectClass"])[0]
    assert "ldapPublicKey" in entry["objectClass"]
    assert d.ssh_keys_get("alice") == [ED25519]
    assert d.ssh_keys_set("alice", []) is True
    assert d.ssh_keys_get("alice") == []
    assert d.ssh_keys_set("nobody-here", [ED25519]) is None


def test_a_directory_without_the_lpk_schema_is_detected(run_dir, ldap_settings) -> None:
    from tests.conftest import need_binary
    from tests.functional.accounts.slapd import Slapd

    bare = Slapd(
        run_dir / "slapd-bare", need_binary("slapd"), need_binary("slapadd"), lpk_schema=False
    )
    bare.start()
    try:
        ldap_settings.AUTH_LDAP_SERVER_URI = bare.uri
        assert get_directory().supports_ssh_keys() is False
    finally:
        bare.stop()


def test_a_directory_that_is_down_is_unavailable(ldap_settings) -> None:
    ldap_settings.AUTH_LDAP_SERVER_URI = f"ldap://127.0.0.1:{free_port()}"
    with pytest.raises(DirectoryUnavailable, match="the LDAP directory is unavailable"):
        get_directory().group_get("ct-web")


def test_a_hung_directory_times_out(ldap_settings, slapd) -> None:
    ldap_settings.AUTH_LDAP_TIMEOUT = 1.0
    dirmod.close_all()
    slapd.pause()
    try:
        started = time.monotonic()
        with pytest.raises(DirectoryUnavailable):
            get_directory().group_get("ct-web")
        assert time.monotonic() - started < 5
    finally:
        slapd.resume()


def test_a_refused_bind_is_a_permanent_error(ldap_settings) -> None:
    ldap_settings.AUTH_LDAP_BIND_PASSWORD = "wrong"
    with pytest.raises(DirectoryError, match="refused the portal's bind DN"):
        get_directory().group_get("ct-web")


def test_a_restarted_directory_is_reconnected_transparently(ldap_settings, slapd) -> None:
    d = get_directory()
    assert d.group_get("ct-none") is None  # a pooled connection now exists
    slapd.stop()
    slapd.start()
    assert d.group_get("ct-none") is None  # the dead connection was replaced, no error
