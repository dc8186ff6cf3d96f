"""Per-container access: the directory group (real slapd) and the Proxmox ACLs (the
simulator), made by the steps of the create, access and delete jobs."""

from __future__ import annotations

import pytest

from auth.models import RealmSync
from containers import collaborators, services
from containers.models import Container
from portal.procs import free_port
from tests.functional.accounts.conftest import job_log, run_job
from tests.functional.accounts.slapd import PEOPLE_LIST

pytestmark = [pytest.mark.ldap, pytest.mark.django_db]

ROLE = "PVEVMUser"


def acl_on(pve, container: Container) -> list[dict]:
    path = f"/vms/{container.vmid}"
    return [a for a in pve.client.acl() if a["path"] == path]


def create(owner, cluster, hostname: str = "web") -> Container:
    job = run_job(
        services.container_create(owner=owner, hostname=hostname, template=cluster.templates.get())
    )
    assert job.status == "succeeded", job_log(job)
    return Container.objects.get(pk=job.container_id)


@pytest.fixture
def wire(monkeypatch) -> list[tuple[str, str, dict]]:
    """Every request the portal's proxmoxer sends to /access, as (method, path, parameters)."""
    from proxmoxer.core import ProxmoxResource

    sent: list[tuple[str, str, dict]] = []
    original = ProxmoxResource._request

    def record(self, method, data=None, params=None):
        path = self._store["base_url"].split("/api2/json", 1)[1]
        if path.startswith("/access"):
            sent.append((method, path, {**(params or {}), **(data or {})}))
        return original(self, method, data=data, params=params)

    monkeypatch.setattr(ProxmoxResource, "_request", record)
    return sent


def writes(wire) -> list[tuple[str, str, dict]]:
    return [w for w in wire if w[0] != "GET"]


def realm_syncs(pve) -> list[dict]:
    return [t for t in pve.admin.tasks() if t.get("type") == "auth-realm-sync"]


def test_create_makes_the_group_syncs_the_realm_and_grants_the_owner(
    ldap_users, pve, cluster, slapd, wire
) -> None:
    bob = ldap_users["bob"]
    syncs_before = len(realm_syncs(pve))
    c = create(bob, cluster)
    job = c.jobs.get(kind="create")
    assert [(s["name"], s["state"]) for s in job.steps][3:6] == [
        ("access_group", "done"),
        ("realm_sync", "done"),
        ("proxmox_acl", "done"),
    ]
    group = slapd.group("ct-web")
    assert group["memberUid"] == ["bob"] and group["gidNumber"] == 200000 + c.pk
    assert f"cluster-portal container {c.pk}" in group["description"][0]

    # POST /access/domains/ldap/sync: one auth-realm-sync task for the realm, by the portal.
    syncs = realm_syncs(pve)
    assert len(syncs) == syncs_before + 1
    assert syncs[-1]["id"] == "ldap" and syncs[-1]["user"] == "portal@pve!portal"
    users = {u["userid"]: u for u in pve.client.api.access.users.get()}
    assert users["bob@ldap"]["enable"] == 1  # enable-new=1
    assert RealmSync.objects.filter(user=bob, site=cluster, realm="ldap").exists()

    # PUT /access/acl path=/vms/<vmid> roles=PVEVMUser users=bob@ldap (propagate default 1).
    assert acl_on(pve, c) == [
        {
            "path": f"/vms/{c.vmid}",
            "type": "user",
            "ugid": "bob@ldap",
            "roleid": ROLE,
            "propagate": 1,
        }
    ]
    log = job_log(job)
    assert f"granted {ROLE} on /vms/{c.vmid} to bob@ldap" in log and "created cn=ct-web" in log
    # What went over the wire, exactly (Proxmox booleans as 1/0).
    assert writes(wire) == [
        ("POST", "/access/domains/ldap/sync", {"scope": "users", "enable-new": 1}),
        (
            "PUT",
            "/access/acl",
            {"path": f"/vms/{c.vmid}", "roles": ROLE, "users": "bob@ldap", "delete": 0},
        ),
    ]

    # The second container of the same user needs no realm sync.
    c2 = create(bob, cluster, hostname="shop")
    job2 = c2.jobs.get(kind="create")
    assert [s["state"] for s in job2.steps if s["name"] == "realm_sync"] == ["skipped"]
    assert len(realm_syncs(pve)) == syncs_before + 1
    assert [a["ugid"] for a in acl_on(pve, c2)] == ["bob@ldap"]


def test_collaborators_are_added_and_removed_in_the_directory_and_on_proxmox(
    ldap_users, pve, cluster, slapd, wire
) -> None:
    bob = ldap_users["bob"]
    c = create(bob, cluster)
    job = run_job(collaborators.collaborator_add(container=c, username="carol", actor=bob))
    assert job.kind == "access" and job.status == "succeeded", job_log(job)
    assert slapd.group("ct-web")["memberUid"] == ["bob", "carol"]
    assert sorted(a["ugid"] for a in acl_on(pve, c)) == ["bob@ldap", "carol@ldap"]
    assert "added carol" in job_log(job)

    job = run_job(collaborators.collaborator_add(container=c, username="dave", actor=bob))
    assert job.status == "succeeded", job_log(job)
    assert slapd.group("ct-web")["memberUid"] == ["bob", "carol", "dave"]

    wire.clear()
    job = run_job(collaborators.collaborator_remove(container=c, username="carol", actor=bob))
    assert job.status == "succeeded", job_log(job)
    assert writes(wire) == [
        (
            "PUT",
            "/access/acl",
            {"path": f"/vms/{c.vmid}", "roles": ROLE, "users": "carol@ldap", "delete": 1},
        )
    ]
    assert slapd.group("ct-web")["memberUid"] == ["bob", "dave"]
    assert sorted(a["ugid"] for a in acl_on(pve, c)) == ["bob@ldap", "dave@ldap"]
    assert f"revoked {ROLE} on /vms/{c.vmid} from carol@ldap" in job_log(job)


def test_delete_revokes_every_grant_and_removes_the_group(ldap_users, pve, cluster, slapd) -> None:
    bob = ldap_users["bob"]
    c = create(bob, cluster)
    run_job(collaborators.collaborator_add(container=c, username="erin", actor=bob))
    assert len(acl_on(pve, c)) == 2
    job = run_job(services.container_delete(container=c, actor=bob))
    assert job.status == "succeeded", job_log(job)
    assert [s["name"] for s in job.steps][:2] == ["revoke", "access_group"]
    assert acl_on(pve, c) == []
    assert slapd.group("ct-web") is None
    log = job_log(job)
    assert "revoked PVEVMUser" in log and "removed cn=ct-web" in log


def test_a_directory_that_is_down_is_retried_and_then_fails_clearly(
    ldap_users, pve, cluster, slapd
) -> None:
    bob = ldap_users["bob"]
    c = create(bob, cluster)
    ldap_settings_uri = f"ldap://127.0.0.1:{free_port()}"
    from django.conf import settings

    good_uri = settings.AUTH_LDAP_SERVER_URI
    added = collaborators.collaborator_add(container=c, username="carol", actor=bob)
    settings.AUTH_LDAP_SERVER_URI = ldap_settings_uri  # down after the add was accepted
    try:
        job = run_job(added)
    finally:
        settings.AUTH_LDAP_SERVER_URI = good_uri
    assert job.status == "failed" and job.attempts == settings.JOB_MAX_ATTEMPTS
    assert job.error_code == "directory_unavailable"
    assert "at step 'Update the directory access group'" in job.error
    assert "the LDAP directory is unavailable" in job.error and "gave up after" in job.error
    retries = [
        e.message for e in job.log_entries.filter(level="warning") if "retrying in" in e.message
    ]
    assert len(retries) == settings.JOB_MAX_ATTEMPTS - 1
    # Nothing after the failed step ran, and nothing was skipped.
    assert [s["state"] for s in job.steps] == ["failed", "pending", "pending"]
    assert slapd.group("ct-web")["memberUid"] == ["bob"]
    assert "carol@ldap" not in {a["ugid"] for a in acl_on(pve, c)}


def test_a_directory_back_within_the_retries_lets_the_job_succeed(
    ldap_users, pve, cluster, slapd
) -> None:
    from containers import jobs

    bob = ldap_users["bob"]
    c = create(bob, cluster)
    job = collaborators.collaborator_add(container=c, username="dave", actor=bob)
    slapd.stop()
    try:
        with pytest.raises(jobs.RetryLater):
            jobs.run(str(job.pk), worker="tests")
    finally:
        slapd.start()
    job = run_job(job)
    assert job.status == "succeeded" and job.attempts == 2, job_log(job)
    assert slapd.group("ct-web")["memberUid"] == ["bob", "dave"]
    assert "the LDAP directory is unavailable" in job_log(job)


def test_a_user_proxmox_does_not_know_gets_a_realm_sync_first(ldap_users, pve, cluster) -> None:
    """A RealmSync record can be stale (say the realm was purged): the grant's "does not
    exist" makes the step sync the realm and try once more."""
    gina = ldap_users["gina"]
    RealmSync.objects.create(user=gina, site=cluster, realm="ldap")
    pve.admin.set_directory_users("ldap", [p.uid for p in PEOPLE_LIST if p.uid != "frank"])
    c = create(gina, cluster, hostname="gina")
    job = c.jobs.get(kind="create")
    log = job_log(job)
    assert "Proxmox does not know gina@ldap yet" in log and "realm 'ldap' synced" in log
    assert [a["ugid"] for a in acl_on(pve, c)] == ["gina@ldap"]


def test_a_user_the_realm_never_finds_fails_the_create_and_nothing_is_left(
    ldap_users, pve, cluster, slapd
) -> None:
    frank = ldap_users["frank"]
    job = run_job(
        services.container_create(owner=frank, hostname="lost", template=cluster.templates.get())
    )
    assert job.status == "failed"
    assert "Proxmox does not know frank@ldap even after a sync of the realm 'ldap'" in job.error
    c = Container.objects.get(pk=job.container_id)
    assert c.status == "deleted"
    assert slapd.group("ct-lost") is None  # the create's group was removed by the undo
    assert not [g for g in pve.admin.guests() if g["conf"].get("hostname") == "lost"]


def test_users_without_a_directory_entry_are_named_in_the_log(
    ldap_users, pve, cluster, slapd
) -> None:
    from django.contrib.auth import get_user_model

    local = get_user_model().objects.create_user("local-only")
    c = create(local, cluster, hostname="loc")
    log = job_log(c.jobs.get(kind="create"))
    assert "local-only has no entry in the directory" in log
    assert slapd.group("ct-loc").get("memberUid", []) == []
    assert acl_on(pve, c) == []


def test_without_a_directory_the_steps_say_they_are_left_out(pve, cluster, db) -> None:
    from tests.factories import UserFactory

    c = create(UserFactory(username="nodir"), cluster, hostname="nodir")
    job = c.jobs.get(kind="create")
    assert [s["state"] for s in job.steps][3:6] == ["skipped", "skipped", "skipped"]
    log = job_log(job)
    assert log.count("No LDAP directory is configured") == 1  # one line, not one per step
    assert "AUTH_LDAP" not in log  # no setting names in what users read
    assert "[info] access_group: No LDAP directory" in log
