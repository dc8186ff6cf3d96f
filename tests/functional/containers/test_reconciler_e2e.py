"""The reconciler against the simulator seeded with each kind of drift, over real HTTPS,
with a real worker running the mend jobs it queues.

The simulator is shared by the session, so other tests' CTs are there too: each test
asserts on the CTs it seeded, and that none of them was removed.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from auth.models import AuditEntry
from containers import reconciler, services
from containers.models import (
    Container,
    FindingAction,
    FindingKind,
    Job,
    JobKind,
    JobStatus,
    ReconcileFinding,
    ReconcileRun,
)
from containers.proxmox import ProxmoxClient
from containers.tags import net_option
from networking.models import Node, Route
from tests.conftest import wait_job
from tests.factories import UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def tag() -> str:
    return uuid.uuid4().hex[:6]


def running(cluster: Any, prefix: str, node: str | None = None) -> Container:
    """A running container (on `node` if given: VMIDs alternate, so a few tries at most)."""
    owner = UserFactory()
    for _ in range(4):
        job = wait_job(
            services.container_create(
                owner=owner, hostname=f"{prefix}-{tag()}", template=cluster.templates.get()
            ).pk
        )
        assert job.status == JobStatus.SUCCEEDED, job.error
        c = Container.objects.select_related("node", "site").get(pk=job.container_id)
        if node is None or c.node.name == node:
            return c
    pytest.fail(f"no container landed on {node}")


def client_for(c: Container) -> ProxmoxClient:
    return ProxmoxClient.for_node(c.node)


def guest_vmids(sim: Any) -> set[int]:
    return {int(g["vmid"]) for g in sim.admin.guests()}


def guest(sim: Any, vmid: int) -> dict[str, Any]:
    return next(g for g in sim.admin.guests() if int(g["vmid"]) == vmid)


def free_vmid(sim: Any, node: str) -> int:
    """A VMID no guest has, far above the portal's (so no create takes it meanwhile)."""
    used = guest_vmids(sim)
    odd = node == "pve1"
    return next(v for v in range(90001 if odd else 90000, 99999, 2) if v not in used)


def findings(run: ReconcileRun, **kw: Any) -> list[ReconcileFinding]:
    return list(run.findings.filter(**kw).order_by("id"))


def test_each_kind_of_drift_is_found_and_only_the_safe_ones_are_mended(
    cluster, sim, worker
) -> None:
    drifted = running(cluster, "drift")
    stopped = running(cluster, "stopped")
    missing = running(cluster, "missing")
    grown = running(cluster, "grown")
    # An operator works in the Proxmox UI, around the portal:
    api = client_for(drifted)
    api.update_config(drifted.node.name, drifted.vmid, cores=3, hostname="renamed")
    api = client_for(stopped)
    api.wait_task(api.stop(stopped.node.name, stopped.vmid))
    api = client_for(missing)
    api.wait_task(api.stop(missing.node.name, missing.vmid))
    api.wait_task(api.delete_container(missing.node.name, missing.vmid, purge=True))
    api = client_for(grown)
    upid = api.resize_disk(grown.node.name, grown.vmid, disk="rootfs", size="+2G")
    if upid:
        api.wait_task(upid)
    stray = free_vmid(sim, "pve1")
    sim.admin.create_foreign_guest("pve1", stray, name="stray", tags="cluster-portal")
    before = guest_vmids(sim)

    # A dry run finds everything and changes nothing.
    dry = reconciler.reconcile_site(site=cluster, dry_run=True)
    assert {f.action for f in dry.findings.exclude(action=FindingAction.REPORTED)} <= {
        FindingAction.WOULD
    }
    assert {f.field for f in findings(dry, container=drifted)} == {"cores", "hostname"}
    assert findings(dry, container=stopped, kind=FindingKind.STATUS)
    assert findings(dry, container=missing, kind=FindingKind.MISSING)
    assert findings(dry, vmid=stray, kind=FindingKind.ORPHAN)
    assert Container.objects.get(pk=stopped.pk).status == "running"
    assert Container.objects.get(pk=missing.pk).status == "running"
    assert not Job.objects.filter(kind=JobKind.MEND).exists()
    assert guest(sim, drifted.vmid)["conf"]["cores"] == 3

    run = reconciler.reconcile_site(site=cluster)
    assert run.nodes_checked == ["pve2", "pve1"] and run.nodes_skipped == {}

    # (a) config drift: the portal's cores and hostname are put back by a mend job.
    drift = {f.field: f for f in findings(run, container=drifted)}
    assert set(drift) == {"cores", "hostname"}
    assert (drift["cores"].portal_value, drift["cores"].proxmox_value) == ("1", "3")
    assert drift["hostname"].proxmox_value == "renamed"
    assert {f.action for f in drift.values()} == {FindingAction.CORRECTED}
    mend = Job.objects.get(kind=JobKind.MEND, container=drifted)
    assert wait_job(mend.pk).status == JobStatus.SUCCEEDED
    conf = guest(sim, drifted.vmid)["conf"]
    assert (conf["cores"], conf["hostname"]) == (1, drifted.hostname)
    # ... and Proxmox's power state is recorded.
    [status] = findings(run, container=stopped)
    assert (status.kind, status.proxmox_value) == (FindingKind.STATUS, "stopped")
    assert Container.objects.get(pk=stopped.pk).status == "stopped"
    # A disk grown on Proxmox is reported only (it cannot be shrunk back).
    [disk] = findings(run, container=grown)
    assert (disk.field, disk.action) == ("disk", FindingAction.REPORTED)
    assert (disk.portal_value, disk.proxmox_value) == (str(grown.disk_gib), str(grown.disk_gib + 2))

    # (c) missing: marked error, naming the node, and it keeps its allocations.
    [gone] = findings(run, container=missing)
    assert (gone.kind, gone.action) == (FindingKind.MISSING, FindingAction.MARKED_ERROR)
    row = Container.objects.get(pk=missing.pk)
    assert row.status == "error"
    assert row.status_message.startswith(f"missing on {missing.node.name}")
    assert (row.ip, row.mac, row.vmid) == (missing.ip, missing.mac, missing.vmid)
    assert Route.objects.filter(container=row).exists()
    assert AuditEntry.objects.filter(action="container.missing", object_id=str(row.pk)).exists()
    again = services.container_create(
        owner=UserFactory(), hostname=f"after-{tag()}", template=cluster.templates.get()
    )
    assert again.container.ip != missing.ip

    # (b) orphan: reported, never removed.
    [orphan] = findings(run, vmid=stray)
    assert (orphan.kind, orphan.action, orphan.node) == (
        FindingKind.ORPHAN,
        FindingAction.REPORTED,
        "pve1",
    )
    # Nothing was deleted from Proxmox, by the dry run or the real one.
    assert before <= guest_vmids(sim)

    # The next pass: the mended drift is gone, the missing container is only reported.
    wait_job(again.pk)
    later = reconciler.reconcile_site(site=cluster)
    assert not findings(later, container=drifted)
    assert [f.action for f in findings(later, container=missing)] == [FindingAction.REPORTED]
    assert findings(later, vmid=stray, kind=FindingKind.ORPHAN)
    assert AuditEntry.objects.filter(action="container.missing").count() == 1


def test_a_node_answering_595_throughout_changes_nothing(cluster, sim, worker) -> None:
    on_pve1 = running(cluster, "silent", node="pve1")
    gone_pve1 = running(cluster, "gone", node="pve1")
    api = client_for(gone_pve1)
    api.wait_task(api.stop("pve1", gone_pve1.vmid))
    api.wait_task(api.delete_container("pve1", gone_pve1.vmid, purge=True))
    api.update_config("pve1", on_pve1.vmid, memory=2048)
    stray = free_vmid(sim, "pve1")
    sim.admin.create_foreign_guest("pve1", stray, tags="cluster-portal")
    sim.admin.set_node_offline("pve1")

    run = reconciler.reconcile_site(site=cluster)
    assert run.nodes_checked == ["pve2"]
    assert "595" in run.nodes_skipped["pve1"]
    [silent] = findings(run, node="pve1")
    assert (silent.kind, silent.action) == (FindingKind.UNREACHABLE, FindingAction.REPORTED)
    assert "containers were not checked" in silent.message
    # Nothing on pve1 was judged: not missing, not drifted, no orphan, no job.
    for c in (on_pve1, gone_pve1):
        assert Container.objects.get(pk=c.pk).status == "running"
    assert not Job.objects.filter(kind=JobKind.MEND).exists()
    assert Node.objects.get(site=cluster, name="pve1").state == "offline"

    sim.admin.set_node_offline("pve1", offline=False)
    after = reconciler.reconcile_site(site=cluster)
    assert Node.objects.get(site=cluster, name="pve1").state == "active"
    assert [f.kind for f in findings(after, container=gone_pve1)] == [FindingKind.MISSING]
    assert [f.field for f in findings(after, container=on_pve1)] == ["memory"]
    assert findings(after, vmid=stray, kind=FindingKind.ORPHAN)
    assert stray in guest_vmids(sim)


def test_a_failed_create_that_left_nothing_is_released(cluster, sim, worker) -> None:
    sim.admin.set_node_offline("pve1")
    sim.admin.set_node_offline("pve2")
    name = f"never-{tag()}"
    job = wait_job(
        services.container_create(
            owner=UserFactory(), hostname=name, template=cluster.templates.get()
        ).pk
    )
    assert job.status == JobStatus.FAILED
    c = Container.objects.get(pk=job.container_id)
    assert c.status == "error"  # it could not learn whether the CT exists: kept
    sim.admin.reset_faults()

    run = reconciler.reconcile_site(site=cluster)
    [leak] = findings(run, container=c)
    assert (leak.kind, leak.action) == (FindingKind.LEAK, FindingAction.RELEASED)
    assert f"VMID {c.vmid}, {c.ip}" in leak.message
    assert Container.objects.get(pk=c.pk).status == "deleted"
    retry = services.container_create(
        owner=UserFactory(), hostname=name, template=cluster.templates.get()
    )
    assert retry.container.ip == c.ip
    assert wait_job(retry.pk).status == JobStatus.SUCCEEDED


def test_routes_left_on_a_deleted_container_are_released(cluster, sim, worker) -> None:
    c = running(cluster, "leaky")
    assert wait_job(services.container_delete(container=c, actor=None).pk).status == "succeeded"
    # A bug (or a hand in the database) left a route behind.
    leftover = Route.objects.create(
        site=cluster, container=c, name="web", subdomain=f"web-{c.hostname}", backend_port=8080
    )
    run = reconciler.reconcile_site(site=cluster)
    [leak] = findings(run, container=c)
    assert (leak.kind, leak.action) == (FindingKind.LEAK, FindingAction.RELEASED)
    assert not Route.objects.filter(pk=leftover.pk).exists()


def test_an_orphan_is_adopted_or_destroyed_from_the_admin(cluster, sim, worker, client) -> None:
    staff = UserFactory(username=f"op{tag()}", is_staff=True, is_superuser=True)
    client.force_login(staff)
    keep, drop = free_vmid(sim, "pve1"), free_vmid(sim, "pve2")
    sim.admin.create_foreign_guest(
        "pve1", keep, name=f"kept-{tag()}", tags="cluster-portal", status="running"
    )
    sim.admin.create_foreign_guest("pve2", drop, tags="cluster-portal;ct-999999")

    response = client.post(
        "/admin/containers/reconcilerun/run/", {"site": cluster.pk, "dry_run": "on"}
    )
    assert response.status_code == 302
    run = ReconcileRun.objects.get()
    assert run.dry_run and run.actor == staff
    page = client.get(response["Location"])
    assert f"CT {keep}" in page.content.decode()
    adopt, destroy = (run.findings.get(vmid=v, kind=FindingKind.ORPHAN) for v in (keep, drop))

    changelist = "/admin/containers/reconcilefinding/"
    client.post(changelist, {"action": "adopt", "_selected_action": [adopt.pk]})
    c = Container.objects.get(vmid=keep, site=cluster)
    assert (c.owner, c.node.name, c.status) == (staff, "pve1", "running")
    job = Job.objects.get(container=c, kind=JobKind.MEND)
    assert wait_job(job.pk).status == JobStatus.SUCCEEDED
    conf = guest(sim, keep)["conf"]
    assert f"ct-{c.pk}" in conf["tags"] and conf["hostname"] == c.hostname
    assert net_option(conf["net0"], "hwaddr").upper() == c.mac.upper()
    assert Route.objects.filter(container=c, subdomain=c.hostname).exists()
    adopt.refresh_from_db()
    assert adopt.resolved_at and "adopted as" in adopt.resolution

    client.post(changelist, {"action": "destroy", "_selected_action": [destroy.pk]})
    deadline = time.monotonic() + 20
    while drop in guest_vmids(sim) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert drop not in guest_vmids(sim)
    destroy.refresh_from_db()
    assert "destroyed" in destroy.resolution

    # Adopted, it is no orphan any more; destroyed, it is gone from the report.
    run = reconciler.reconcile_site(site=cluster)
    assert not findings(run, vmid=keep) and not findings(run, vmid=drop)
    # A second adopt of a settled finding is refused.
    client.post(changelist, {"action": "adopt", "_selected_action": [adopt.pk]})
    assert Container.objects.filter(vmid=keep).count() == 1


def test_the_beat_task_and_the_command(cluster, sim, worker, capsys) -> None:
    from django.conf import settings

    from containers.tasks import reconcile_sites
    from portal.celery import app

    beat = app.conf.beat_schedule["reconcile-sites"]
    assert beat["task"] == "containers.reconcile_sites"
    assert beat["schedule"] == settings.RECONCILE_SITES_INTERVAL
    reconcile_sites.apply_async(queue="proxmox")  # one beat tick, on the real worker
    deadline = time.monotonic() + 20
    while not ReconcileRun.objects.filter(finished_at__isnull=False).exists():
        assert time.monotonic() < deadline, "the worker ran no reconcile"
        time.sleep(0.1)
    assert ReconcileRun.objects.get().actor is None
    # Reports older than RECONCILE_KEEP_DAYS are pruned by the next periodic run.
    old = ReconcileRun.objects.create(site=cluster, started_at=timezone.now() - timedelta(days=15))
    reconciler.reconcile_all()
    assert not ReconcileRun.objects.filter(pk=old.pk).exists()

    stray = free_vmid(sim, "pve2")
    sim.admin.create_foreign_guest("pve2", stray, tags="cluster-portal")
    with pytest.raises(SystemExit) as exit_:
        call_command("reconcile", "--site", cluster.slug, "--dry-run")
    assert exit_.value.code == 1
    out = capsys.readouterr().out
    assert f"CT {stray}" in out and "orphan" in out


def test_grants_on_a_vmid_nobody_holds_are_revoked(cluster, sim, worker) -> None:
    live = running(cluster, "granted")
    api = client_for(live)
    ghost = f"ghost{tag()}"
    sim.admin.set_directory_users("ldap", [ghost])
    api.wait_task(api.realm_sync("ldap"))
    userid = f"{ghost}@ldap"
    vm = free_vmid(sim, "pve1")  # an operator's QEMU VM: not in the nodes' CT lists
    sim.admin.create_foreign_guest("pve1", vm, type="qemu")
    nobody, orphan = free_vmid(sim, "pve1"), free_vmid(sim, "pve2")
    sim.admin.create_foreign_guest("pve2", orphan, tags="cluster-portal")
    for vmid in (nobody, orphan, live.vmid, vm):
        api.grant_acl(path=f"/vms/{vmid}", role="PVEVMUser", users=userid)

    def held() -> set[str]:
        return {a["path"] for a in api.acl() if a.get("ugid") == userid}

    reconciler.reconcile_site(site=cluster, dry_run=True)
    assert held() == {f"/vms/{v}" for v in (nobody, orphan, live.vmid, vm)}
    run = reconciler.reconcile_site(site=cluster)
    [leak] = findings(run, vmid=nobody)
    assert (leak.kind, leak.field, leak.proxmox_value) == (FindingKind.LEAK, "acl", userid)
    # Only the grant on a VMID no guest and no container has is revoked.
    assert held() == {f"/vms/{orphan}", f"/vms/{live.vmid}", f"/vms/{vm}"}
