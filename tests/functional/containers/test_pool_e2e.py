"""The warm pool (issue #18) against the simulator over HTTPS: refills run by a real worker
on the `pool` queue, and the refill pass itself with the simulator's fault hooks."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.conf import settings

from containers import reconciler, services
from containers.models import FindingKind, JobStatus, PoolMember, PoolTarget
from containers.pool.claim import MEMBER_PARAM
from containers.pool.models import POOL_TAG, PoolMemberState
from containers.pool.refill import refill_site
from containers.pool.services import pool_target_set
from containers.proxmox import ProxmoxClient
from containers.tags import net_option, tag_set
from containers.tasks import probe_nodes
from networking.models import Node, NodeState
from portal.celery import POOL_QUEUE
from tests.conftest import wait_job
from tests.factories import UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

OTHER_DEBIAN = "local:vztmpl/debian-13-standard_13.1-2_amd64.tar.zst"


@pytest.fixture
def pool_worker(make_worker: Any) -> Any:
    """A worker of the `pool` queue only, one at a time, as deployed."""
    w = make_worker("pool", concurrency=1, queues=POOL_QUEUE)
    yield w
    w.stop()


def node(name: str) -> Node:
    return Node.objects.get(name=name)


def ready(**kw: Any) -> list[PoolMember]:
    return list(PoolMember.objects.filter(state=PoolMemberState.READY, **kw).select_related("node"))


def wait_ready(count: int, timeout: float = 60.0, **kw: Any) -> list[PoolMember]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        members = ready(**kw)
        if len(members) == count:
            return members
        time.sleep(0.1)
    pytest.fail(f"{len(ready(**kw))} ready members, not {count}, after {timeout} s")


def config(member: PoolMember) -> dict[str, Any]:
    return ProxmoxClient.for_node(member.node).container_config(member.node.name, member.vmid)


def on_proxmox(sim: Any) -> set[int]:
    return {int(g["vmid"]) for g in sim.admin.guests()}


def test_a_target_is_refilled_by_the_pool_worker(cluster, sim, pool_worker) -> None:
    template = cluster.templates.get()
    started = time.monotonic()
    for name in ("pve1", "pve2"):
        pool_target_set(template=template, node=node(name), target=2, actor=None)
    members = wait_ready(4)
    took = time.monotonic() - started
    for m in members:
        assert m.vmid % 2 == m.node.slot  # parity: odd on pve1 (slot 1), even on pve2
        assert m.vmid >= settings.VMID_MIN
        c = config(m)
        assert tag_set(c["tags"]) == {settings.PROXMOX_MANAGED_TAG, POOL_TAG}
        assert c["hostname"] == f"pool-{m.vmid}"
        assert int(c["unprivileged"]) == 1
        assert int(c.get("onboot", 0)) == 0
        assert net_option(c["net0"], "ip") == "dhcp"
        assert net_option(c["net0"], "bridge") == cluster.bridge
        assert c["rootfs"].startswith(f"{cluster.rootfs_storage}:")
        status = ProxmoxClient.for_node(m.node).container_status(m.node.name, m.vmid)
        assert status["status"] == "stopped"
        assert m.volid == template.volid
    assert len({m.vmid for m in members}) == 4
    assert PoolTarget.objects.get(template=template, node=node("pve1")).last_build_seconds
    # A pass over full pools makes nothing more.
    assert refill_site(cluster).made == []
    assert len(ready()) == 4
    print(f"4 members ready in {took:.2f} s")


def test_a_node_that_goes_down_is_skipped_and_not_refilled(cluster, sim) -> None:
    template = cluster.templates.get()
    for name in ("pve1", "pve2"):
        pool_target_set(template=template, node=node(name), target=1, actor=None)
    sim.admin.set_node_offline("pve1")
    before = on_proxmox(sim)
    p = refill_site(cluster)
    # pve1 answered 595 to the create: its pool stopped, and the probe marked it offline.
    assert "pve1" in p.skipped
    assert node("pve1").state == NodeState.OFFLINE
    assert [m.node.name for m in ready()] == ["pve2"]
    made = on_proxmox(sim) - before
    assert all(v % 2 == 0 for v in made), made
    # While it is offline, a pass does not touch it (not even to clean up).
    again = refill_site(cluster)
    assert again.made == [] and "pve1" in again.skipped
    assert "is offline" in again.skipped["pve1"]
    assert PoolTarget.objects.get(node=node("pve1")).skipped_reason
    # Back: the probe makes it active, the next pass cleans and fills its pool.
    sim.admin.reset_faults()
    probe_nodes()
    assert node("pve1").state == NodeState.ACTIVE
    refill_site(cluster)
    assert sorted(m.node.name for m in ready()) == ["pve1", "pve2"]
    assert not PoolMember.objects.exclude(state=PoolMemberState.READY).exists()


def test_a_node_in_maintenance_is_skipped(cluster, sim) -> None:
    template = cluster.templates.get()
    Node.objects.filter(name="pve2").update(state=NodeState.MAINTENANCE)
    pool_target_set(template=template, node=node("pve2"), target=1, actor=None)
    before = on_proxmox(sim)
    p = refill_site(cluster)
    assert p.made == [] and "maintenance" in p.skipped["pve2"]
    assert on_proxmox(sim) == before


def test_a_template_change_recycles_its_members(cluster, sim) -> None:
    template = cluster.templates.get()
    pool_target_set(template=template, node=node("pve2"), target=2, actor=None)
    refill_site(cluster)
    old = {m.vmid for m in ready()}
    assert len(old) == 2
    # A new version of the template: the members of the old volume are destroyed, new made.
    type(template).objects.filter(pk=template.pk).update(volid=OTHER_DEBIAN)
    p = refill_site(cluster)
    assert sorted(p.removed) == sorted(old)
    assert not old & on_proxmox(sim)
    members = ready()
    assert len(members) == 2 and {m.volid for m in members} == {OTHER_DEBIAN}
    assert all(config(m)["ostype"] == "debian" for m in members)
    # Disabled: its members go and none is made.
    type(template).objects.filter(pk=template.pk).update(enabled=False)
    p = refill_site(cluster)
    assert len(p.removed) == 2 and p.made == []
    assert not PoolMember.objects.exists()
    assert not {m.vmid for m in members} & on_proxmox(sim)


def test_a_lower_target_removes_the_members_above_it(cluster, sim) -> None:
    template = cluster.templates.get()
    pool_target_set(template=template, node=node("pve1"), target=2, actor=None)
    refill_site(cluster)
    assert len(ready()) == 2
    pool_target_set(template=template, node=node("pve1"), target=0, actor=None)
    p = refill_site(cluster)
    assert len(p.removed) == 2 and not PoolMember.objects.exists()


def test_the_reconciler_knows_pool_members(cluster, sim) -> None:
    template = cluster.templates.get()
    for name in ("pve1", "pve2"):
        pool_target_set(template=template, node=node(name), target=1, actor=None)
    refill_site(cluster)
    members = {m.vmid for m in ready()}
    assert len(members) == 2
    run = reconciler.reconcile_site(site=cluster)
    orphans = {f.vmid for f in run.findings.filter(kind=FindingKind.ORPHAN)}
    assert not members & orphans
    # A member's CT whose row is gone is the portal's and nobody's: an orphan.
    gone = PoolMember.objects.order_by("vmid").first()
    assert gone is not None
    PoolMember.objects.filter(pk=gone.pk).delete()
    run = reconciler.reconcile_site(site=cluster)
    orphans = {f.vmid for f in run.findings.filter(kind=FindingKind.ORPHAN)}
    assert gone.vmid in orphans and not (members - {gone.vmid}) & orphans


def test_a_busy_refill_never_delays_a_queued_user_job(cluster, sim, own_workers) -> None:
    """The pool worker is in a long refill (4 members, each create task 3 s) when a user's
    create is queued: the create starts before the refill's first member is ready, and
    runs while the refill is still making members.

    The job worker runs one job at a time, so a refill on its queue would hold the
    create until the whole refill was done: it would start after the last member."""
    own_workers("jobs", concurrency=1, queues="proxmox")  # the shared workers are paused
    own_workers("pool", concurrency=1, queues=POOL_QUEUE)
    sim.admin.set_task_seconds("vzcreate", 3.0)
    template = cluster.templates.get()
    pool_target_set(template=template, node=node("pve2"), target=4, actor=None)  # asks a refill
    deadline = time.monotonic() + 30
    while not PoolMember.objects.filter(state=PoolMemberState.CREATING).exists():
        assert time.monotonic() < deadline, "the pool worker never started the refill"
        time.sleep(0.02)
    queued = time.monotonic()
    job = services.container_create(owner=UserFactory(), hostname="meanwhile", template=template)
    done = wait_job(job.pk, timeout=60)
    took = time.monotonic() - queued
    ready_now = PoolMember.objects.filter(state=PoolMemberState.READY).count()
    assert done.status == JobStatus.SUCCEEDED, done.error
    assert MEMBER_PARAM not in done.params  # none was ready yet: it made its own CT
    assert ready_now < 4  # the refill is still at work
    members = wait_ready(4, timeout=60)
    refill = time.monotonic() - queued
    made = sorted(m.ready_at for m in members if m.ready_at)
    assert len(made) == 4
    assert done.started_at < made[0], (done.started_at, made)  # it never waited for a member
    assert done.finished_at < made[-1], (done.finished_at, made)  # running before the refill ended
    print(
        f"user create running in {took:.1f} s; the refill ended {refill:.1f} s after it was queued"
    )
