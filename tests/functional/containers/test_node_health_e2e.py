"""Node health through the real stack: a worker, the simulator over HTTPS and its fault interface."""

from __future__ import annotations

import time

import pytest
from django.conf import settings

from auth.models import AuditEntry
from containers import services
from containers.models import Container, JobStatus
from containers.tasks import probe_nodes
from networking.models import Node, NodeState
from tests.conftest import wait_job
from tests.factories import UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def state(name: str) -> Node:
    return Node.objects.get(name=name)


def wait_state(name: str, wanted: str, timeout: float) -> float:
    """Seconds until the node reached `wanted`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if state(name).state == wanted:
            return time.monotonic() - start
        time.sleep(0.05)
    pytest.fail(f"{name} is {state(name).state}, not {wanted}, after {timeout} s")


def container_on(cluster, node: str) -> Container:
    """A running container on `node` (VMIDs alternate between the nodes: two tries at most)."""
    owner = UserFactory()
    for i in range(3):
        job = wait_job(
            services.container_create(
                owner=owner, hostname=f"on-{node}-{i}", template=cluster.templates.get()
            ).pk
        )
        assert job.status == JobStatus.SUCCEEDED, job.error
        c = Container.objects.select_related("node").get(pk=job.container_id)
        if c.node.name == node:
            return c
    pytest.fail(f"no container landed on {node}")


def test_the_beat_probe_marks_a_down_node_offline_and_active_again(cluster, sim, worker) -> None:
    assert settings.NODE_PROBE_INTERVAL <= 1  # tests/testenv.py
    from portal.celery import app

    beat = app.conf.beat_schedule["probe-nodes"]
    assert beat["task"] == "containers.probe_nodes"
    assert beat["schedule"] == settings.NODE_PROBE_INTERVAL

    sim.admin.set_node_offline("pve1")
    probe_nodes.apply_async(queue="proxmox")  # one beat tick, run by the real worker
    took = wait_state("pve1", NodeState.OFFLINE, timeout=10)
    pve1 = state("pve1")
    assert pve1.offline_since is not None
    assert pve1.offline_reason == "595 Connection refused"
    assert state("pve2").state == NodeState.ACTIVE
    assert AuditEntry.objects.filter(action="node.offline", object_id=str(pve1.pk)).count() == 1
    # A second tick while it is still down changes nothing (same time, one audit entry).
    probe_nodes()
    assert state("pve1").offline_since == pve1.offline_since
    assert AuditEntry.objects.filter(action="node.offline").count() == 1

    sim.admin.reset_faults()
    probe_nodes.apply_async(queue="proxmox")
    took = max(took, wait_state("pve1", NodeState.ACTIVE, timeout=10))
    pve1 = state("pve1")
    assert pve1.offline_since is None and pve1.offline_reason == ""
    assert AuditEntry.objects.filter(action="node.online", object_id=str(pve1.pk)).count() == 1
    print(f"detected in {took:.2f} s (probe interval {settings.NODE_PROBE_INTERVAL} s)")


def test_a_node_in_maintenance_is_never_flipped(cluster, sim) -> None:
    Node.objects.filter(name="pve1").update(state=NodeState.MAINTENANCE)
    sim.admin.set_node_offline("pve1")
    probe_nodes()
    assert state("pve1").state == NodeState.MAINTENANCE
    sim.admin.reset_faults()
    probe_nodes()
    assert state("pve1").state == NodeState.MAINTENANCE


def test_creates_skip_an_offline_node_and_keep_the_parity(cluster, sim, worker) -> None:
    sim.admin.set_node_offline("pve1")
    probe_nodes()
    assert state("pve1").state == NodeState.OFFLINE
    owner = UserFactory()
    made = [
        services.container_create(
            owner=owner, hostname=f"even{i}", template=cluster.templates.get()
        )
        for i in range(3)
    ]
    for job in made:
        job = wait_job(job.pk)
        assert job.status == JobStatus.SUCCEEDED, job.error
        c = Container.objects.select_related("node").get(pk=job.container_id)
        assert c.node.name == "pve2" and c.vmid % 2 == 0, (c.node.name, c.vmid)

    sim.admin.reset_faults()
    probe_nodes()
    assert state("pve1").state == NodeState.ACTIVE
    placed = {}
    for i in range(2):
        job = wait_job(
            services.container_create(
                owner=owner, hostname=f"back{i}", template=cluster.templates.get()
            ).pk
        )
        assert job.status == JobStatus.SUCCEEDED, job.error
        c = Container.objects.select_related("node").get(pk=job.container_id)
        assert c.node.slot == c.vmid % 2
        placed[c.node.name] = c.vmid
    assert "pve1" in placed  # the odd VMIDs are offered again


def test_work_for_a_down_node_waits_and_completes_after_recovery(cluster, sim, worker) -> None:
    c = container_on(cluster, "pve1")
    sim.admin.set_node_offline("pve1")  # not yet known to the portal: the job finds out
    job = services.container_stop(container=c, actor=c.owner)
    deadline = time.monotonic() + 15
    while not job.log_entries.filter(message__contains="waits for it").exists():
        assert time.monotonic() < deadline, [e.message for e in job.log_entries.all()]
        time.sleep(0.05)
    assert state("pve1").state == NodeState.OFFLINE
    time.sleep(1.5)  # a few looks at the node (NODE_PROBE_INTERVAL 0.5 s)
    job.refresh_from_db()
    assert job.status in (JobStatus.QUEUED, JobStatus.RUNNING)
    assert job.attempts <= 1  # waiting spends no attempts
    messages = [e.message for e in job.log_entries.all()]
    assert any("pve1 is not answering (595 Connection refused)" in m for m in messages), messages
    # Said once per outage, not once per look.
    assert len([m for m in messages if m.startswith("waiting for pve1")]) <= 1, messages

    sim.admin.reset_faults()
    job = wait_job(job.pk, timeout=20)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.attempts == 1
    assert state("pve1").state == NodeState.ACTIVE
    c.refresh_from_db()
    assert c.status == "stopped"
    assert [g["status"] for g in sim.admin.guests() if int(g["vmid"]) == c.vmid] == ["stopped"]


def test_work_for_a_node_that_stays_down_fails_naming_it(cluster, sim, worker) -> None:
    c = container_on(cluster, "pve1")
    sim.admin.set_node_offline("pve1")
    probe_nodes()
    started = time.monotonic()
    job = wait_job(services.container_stop(container=c, actor=c.owner).pk, timeout=30)
    took = time.monotonic() - started
    assert job.status == JobStatus.FAILED
    assert job.error_code == "node_unavailable"
    assert "Stopping on-pve1" in job.error
    assert "pve1 is not answering (595 Connection refused); waited" in job.error, job.error
    assert job.attempts <= 1
    assert took >= settings.NODE_DOWN_WAIT_MAX - 1
    assert any(e.message.startswith("waiting for pve1") for e in job.log_entries.all())
    assert Container.objects.get(pk=c.pk).status != "deleted"


def test_celery_beat_detects_an_outage_and_the_recovery_within_one_interval(
    cluster, sim, own_workers
) -> None:
    """The real scheduler: a worker with its embedded beat, NODE_PROBE_INTERVAL 0.5 s."""
    interval = settings.NODE_PROBE_INTERVAL
    own_workers("beat", concurrency=2, beat=True)
    time.sleep(interval)  # beat's first tick
    assert state("pve1").state == NodeState.ACTIVE
    sim.admin.set_node_offline("pve1", reason="No route to host")
    down = wait_state("pve1", NodeState.OFFLINE, timeout=10 * interval)
    assert state("pve1").offline_reason == "595 No route to host"
    assert state("pve2").state == NodeState.ACTIVE
    sim.admin.reset_faults()
    up = wait_state("pve1", NodeState.ACTIVE, timeout=10 * interval)
    print(f"beat: offline seen after {down:.2f} s, recovery after {up:.2f} s")
    # One interval, plus the worker's time to pick the task up and make the call.
    assert down < interval + 1.0 and up < interval + 1.0, (down, up)
