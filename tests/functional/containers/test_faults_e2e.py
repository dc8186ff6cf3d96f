"""Failures driven through the simulator's fault interface, end to end through a worker."""

from __future__ import annotations

import threading
import time

import pytest

from containers import allocation, jobs, reconcile, services
from containers.models import Container, Job
from containers.tasks import reconcile_jobs
from tests.conftest import wait_job
from tests.factories import UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def guests_named(sim, hostname: str) -> list[dict]:
    return [g for g in sim.admin.guests() if g["conf"].get("hostname") == hostname]


def test_node_offline_during_create_keeps_the_address_until_a_reconcile(
    cluster, sim, worker
) -> None:
    sim.admin.set_node_offline("pve1")
    sim.admin.set_node_offline("pve2")
    job = services.container_create(
        owner=UserFactory(), hostname="offline", template=cluster.templates.get()
    )
    job = wait_job(job.pk)
    c = Container.objects.select_related("node").get(pk=job.container_id)
    assert job.status == "failed"
    # The node is marked offline, the job waits for it (NODE_DOWN_WAIT_MAX) without
    # spending attempts, then fails naming it.
    assert job.error_code == "node_unavailable"
    assert f"Creating offline failed: {c.node.name} is not answering (595 Connection refused)" in (
        job.error
    )
    assert "gave up after" not in job.error
    # The offline node could not say whether it holds the CT: nothing is claimed.
    assert "could not check whether CT" in job.error and "free again" not in job.error
    assert job.attempts == 1
    assert c.status == "error"  # allocations kept
    assert c.node.state == "offline"
    sim.admin.reset_faults()
    from containers.health import probe_nodes

    probe_nodes()
    assert guests_named(sim, "offline") == []
    outcome = reconcile.container_reconcile(container=c, actor=UserFactory(is_staff=True))
    assert f"CT {c.vmid} is absent on {c.node.name}" in outcome, outcome
    c.refresh_from_db()
    assert c.status == "deleted"
    again = services.container_create(
        owner=UserFactory(), hostname="offline", template=cluster.templates.get()
    )
    assert again.container.ip == c.ip
    assert wait_job(again.pk).status == "succeeded"


def test_transient_595_is_retried_then_succeeds(cluster, sim, worker) -> None:
    sim.admin.fail_next_requests("POST", r"^/nodes/[^/]+/lxc$", 2, 595, "Connection refused")
    job = wait_job(
        services.container_create(
            owner=UserFactory(), hostname="flaky", template=cluster.templates.get()
        ).pk
    )
    assert job.status == "succeeded", job.error
    assert job.attempts == 3
    retries = [e.message for e in job.log_entries.filter(level="warning")]
    assert len([m for m in retries if "retrying in" in m]) == 2
    assert len(guests_named(sim, "flaky")) == 1


def test_task_failure_text_is_surfaced_and_the_partial_ct_removed(cluster, sim, worker) -> None:
    sim.admin.fail_next_tasks("vzcreate", 1, "unpacking template failed - disk quota exceeded")
    job = wait_job(
        services.container_create(
            owner=UserFactory(), hostname="broken", template=cluster.templates.get()
        ).pk
    )
    assert job.status == "failed"
    assert job.error_code == "proxmox_task_failed"
    assert "unpacking template failed - disk quota exceeded" in job.error
    assert job.attempts == 1  # permanent: not retried
    assert Container.objects.get(pk=job.container_id).status == "deleted"
    assert guests_named(sim, "broken") == []


def test_lock_timeout_is_retried(cluster, sim, worker) -> None:
    owner = UserFactory()
    job = wait_job(
        services.container_create(
            owner=owner, hostname="locky", template=cluster.templates.get()
        ).pk
    )
    c = Container.objects.get(pk=job.container_id)
    sim.admin.hold_lock(c.vmid, "backup")
    threading.Timer(1.5, lambda: sim.admin.release_lock(c.vmid)).start()
    job = wait_job(services.container_resize(container=c, actor=owner, cores=2).pk)
    assert job.status == "succeeded", job.error
    assert job.attempts >= 2
    assert any("lock" in e.message and "retrying" in e.message for e in job.log_entries.all())


def test_worker_killed_mid_create_is_recovered(cluster, sim, own_workers) -> None:
    sim.admin.set_task_seconds("vzcreate", 3.0)
    victim = own_workers("victim")
    job = services.container_create(
        owner=UserFactory(), hostname="phoenix", template=cluster.templates.get()
    )

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.status == "running" and any(s.get("upid") for s in job.steps):
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"the create never started: {job.status}")
    victim.kill()  # SIGKILL to the whole process group, mid-task
    job.refresh_from_db()
    assert job.status == "running"

    own_workers("rescuer")
    time.sleep(3.5)  # the lease (JOB_LEASE_SECONDS=3) runs out
    assert str(job.pk) in reconcile_jobs()["resumed"]
    job = wait_job(job.pk, timeout=60)
    assert job.status == "succeeded", job.error
    assert job.attempts >= 2
    assert len(guests_named(sim, "phoenix")) == 1
    assert Container.objects.get(pk=job.container_id).status == "running"
    assert any("(resumed)" in e.message or "adopting" in e.message for e in job.log_entries.all())


def test_already_exists_on_proxmox_takes_the_next_vmid(cluster, sim, worker) -> None:
    used = {int(g["vmid"]) for g in sim.admin.guests()} | set(
        Container.objects.values_list("vmid", flat=True)
    )
    nxt = next(v for v in range(100, 10000) if v not in used)
    sim.admin.create_foreign_guest("pve1" if nxt % 2 else "pve2", nxt, name="squatter")
    # The portal's view of Proxmox is a few seconds old: it does not know the squatter yet.
    allocation._foreign_cache[cluster.pk] = (time.monotonic(), frozenset(used))
    job = services.container_create(
        owner=UserFactory(), hostname="late", template=cluster.templates.get()
    )
    assert job.container.vmid == nxt
    job = wait_job(job.pk)
    assert job.status == "succeeded", job.error
    c = Container.objects.select_related("node").get(pk=job.container_id)
    assert c.vmid != nxt and c.node.name == ("pve1" if c.vmid % 2 else "pve2")
    assert [g["conf"]["hostname"] for g in sim.admin.guests() if int(g["vmid"]) == nxt] == [
        "squatter"
    ]
    assert any("taking the next free one" in e.message for e in job.log_entries.all())


def test_rerunning_a_finished_job_is_harmless(cluster, sim, worker) -> None:
    job = wait_job(
        services.container_create(
            owner=UserFactory(), hostname="twice", template=cluster.templates.get()
        ).pk
    )
    jobs.run(str(job.pk), worker="test")  # a duplicate delivery
    assert Job.objects.get(pk=job.pk).attempts == job.attempts
    assert len(guests_named(sim, "twice")) == 1


def test_a_create_that_times_out_keeps_its_allocations_until_a_reconcile(
    cluster, sim, worker
) -> None:
    """Latency above PROXMOX_TIMEOUT: the portal never learns whether the CT was made."""
    from django.conf import settings

    from networking.models import PortMapping, Route
    from portal.errors import UpstreamUnavailable

    staff = UserFactory(is_staff=True)
    # The portal's view of the guests earlier tests left on the simulator, read while
    # Proxmox still answers (the create would otherwise pick a VMID one of them holds).
    services.forget_proxmox_vmids(cluster)
    assert services.proxmox_used_vmids(cluster) or not sim.admin.guests()
    sim.admin.set_latency(float(settings.PROXMOX_TIMEOUT) + 1)
    job = services.container_create(
        owner=UserFactory(), hostname="slowpoke", template=cluster.templates.get()
    )
    job = wait_job(job.pk, timeout=120)
    c = Container.objects.select_related("node").get(pk=job.container_id)
    assert job.status == "failed"
    assert "nothing was left" not in job.error.lower() and "free again" not in job.error
    assert f"The portal could not check whether CT {c.vmid} exists on {c.node.name}" in job.error, (
        job.error
    )
    assert "keeps its name and address until a later check" in job.error
    assert c.status == "error"
    assert Route.objects.filter(container=c).exists()
    assert PortMapping.objects.filter(container=c).exists()

    # The requests Proxmox answered too late were still carried out: the CT is there.
    sim.admin.reset_faults()
    deadline = time.monotonic() + 30
    while not guests_named(sim, "slowpoke") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(guests_named(sim, "slowpoke")) == 1

    # Its address is not handed to the next container.
    nxt = services.container_create(
        owner=UserFactory(), hostname="nextone", template=cluster.templates.get()
    )
    assert (nxt.container.ip, nxt.container.mac) != (c.ip, c.mac)
    assert nxt.container.vmid != c.vmid

    # A reconcile that cannot ask Proxmox changes nothing, and says so.
    sim.admin.set_node_offline(c.node.name)
    with pytest.raises(UpstreamUnavailable, match=f"could not check whether CT {c.vmid}"):
        reconcile.container_reconcile(container=c, actor=staff)
    c.refresh_from_db()
    assert c.status == "error"
    assert Route.objects.filter(container=c).exists()
    sim.admin.reset_faults()
    assert wait_job(nxt.pk).status == "succeeded"

    # Proxmox answers: the CT is ours, so it is removed, then the allocations released.
    outcome = reconcile.container_reconcile(container=c, actor=staff)
    assert f"CT {c.vmid} exists on {c.node.name}" in outcome, outcome
    delete = c.jobs.filter(kind="delete").get()
    assert wait_job(delete.pk).status == "succeeded", delete.error
    c.refresh_from_db()
    assert c.status == "deleted"
    assert guests_named(sim, "slowpoke") == []
    assert not Route.objects.filter(container=c).exists()
    assert not PortMapping.objects.filter(container=c).exists()
    again = services.container_create(
        owner=UserFactory(), hostname="slowpoke", template=cluster.templates.get()
    )
    assert again.container.ip == c.ip
    assert wait_job(again.pk).status == "succeeded"


def test_a_create_that_fails_after_making_the_ct_removes_it_and_says_so(
    cluster, sim, worker
) -> None:
    sim.admin.fail_next_tasks("vzstart", 1, "startup for container failed")
    job = wait_job(
        services.container_create(
            owner=UserFactory(), hostname="nostart", template=cluster.templates.get()
        ).pk
    )
    c = Container.objects.select_related("node").get(pk=job.container_id)
    assert job.status == "failed"
    assert "startup for container failed" in job.error
    assert (
        f"The partly made CT {c.vmid} was removed from {c.node.name}; "
        "its name and address are free again"
    ) in job.error, job.error
    assert c.status == "deleted"
    assert guests_named(sim, "nostart") == []
