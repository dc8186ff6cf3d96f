"""The fault matrix: every fault the simulator offers, injected into a real create, start or
delete run by a real worker. Each case ends in a final job state with a clear message, and
the portal's database agrees with the simulator afterwards (tests/functional/reliability/agreement.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import certifi
import pytest

from containers import allocation, services
from containers.health import probe_nodes
from containers.models import Container, ContainerStatus, Job, JobStatus
from containers.tasks import reconcile_jobs
from networking.models import Node
from tests.conftest import wait_job
from tests.factories import UserFactory
from tests.figures import count_fault
from tests.functional.reliability.agreement import assert_portal_agrees_with_cluster, guest_vmids
from tests.functional.reliability.conftest import FAULT_TIMEOUT, REVOCABLE_TOKEN, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.reliability, pytest.mark.django_db(transaction=True)]

ALL = "*"
CT = r"^/nodes/[^/]+/lxc"


class Case:
    """What a case has to hand: the site, the simulator, the worker."""

    def __init__(self, site: Any, sim: Any, fw: Any, gateway_worker: Any, request: Any) -> None:
        self.site, self.sim, self.fw, self.gateway_worker = site, sim, fw, gateway_worker
        self.request = request  # for the fixtures only some cases need

    # -- faults (each one counted) --
    def fault(self, inject: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        inject(*args, **kwargs)
        count_fault()

    def later(self, seconds: float, fn: Callable[[], Any]) -> None:
        timer = threading.Timer(seconds, fn)
        timer.daemon = True
        timer.start()

    # -- the portal side --
    def create(self, hostname: str) -> Job:
        return services.container_create(
            owner=UserFactory(), hostname=hostname, template=self.site.templates.get()
        )

    def ready(self, hostname: str) -> Container:
        """A container created without faults, to start or delete under one."""
        job = wait_job(self.create(hostname).pk)
        assert job.status == JobStatus.SUCCEEDED, job.error
        return Container.objects.select_related("node").get(pk=job.container_id)

    def quiet_test_process(self) -> None:
        """The create service looks up foreign VMIDs itself: give it a fresh answer, so a
        fault aimed at the worker does not slow the test process."""
        allocation._foreign_cache[self.site.pk] = (time.monotonic(), guest_vmids(self.sim))

    def step(self, job: Job, name: str) -> dict[str, Any]:
        job.refresh_from_db(fields=["steps", "status"])
        return next(s for s in job.steps if s["name"] == name)

    def wait_step(self, job: Job, name: str, key: str = "upid") -> None:
        wait_for(
            lambda: self.step(job, name).get(key) or self.step(job, name)["state"] == "failed",
            timeout=20,
            what=f"step {name} of {job.kind} job {job.pk} with a {key}",
        )

    def node(self, job: Job) -> str:
        return Container.objects.select_related("node").get(pk=job.container_id).node.name

    def guests_named(self, hostname: str) -> list[dict[str, Any]]:
        return [g for g in self.sim.admin.guests() if g["conf"].get("hostname") == hostname]

    def resume_after_kill(self, job: Job) -> Job:
        """The worker was SIGKILLed: a fresh one starts, the lease runs out, and the
        reconciler (beat, in production) hands the job to it."""
        self.fw.ensure()
        wait_for(
            lambda: str(job.pk) in reconcile_jobs()["resumed"],
            timeout=20,
            interval=0.3,
            what=f"job {job.pk} given up by its dead worker",
        )
        return wait_job(job.pk, timeout=60)


# -- the cases: each returns the final job and checks what its fault must produce --------------
def node_offline_mid_create(c: Case) -> Job:
    c.fault(c.sim.admin.set_task_seconds, "vzcreate", 1.5)
    job = c.create("off-create")
    c.wait_step(job, "create")
    c.fault(c.sim.admin.set_node_offline, c.node(job))
    node = c.node(job)
    job = wait_job(job.pk)
    assert job.status == JobStatus.FAILED
    # The node is marked offline; the job waits for it without spending attempts, then
    # fails naming it (containers/health.py).
    assert job.error_code == "node_unavailable"
    assert f"{node} is not answering (595" in job.error and "gave up after" not in job.error
    assert Node.objects.get(site=c.site, name=node).state == "offline"
    # The create task had been accepted: its CT may be there, so nothing is released.
    assert Container.objects.get(pk=job.container_id).status == ContainerStatus.ERROR
    return job


def node_offline_mid_delete(c: Case) -> Job:
    ct = c.ready("off-delete")
    c.fault(c.sim.admin.set_task_seconds, "vzstop", 1.5)
    job = services.container_delete(container=ct, actor=ct.owner)
    wait_for(
        lambda: (
            c.step(job, "stop")["state"] == "running"
            and any(t["type"] == "vzstop" and t["status"] == "running" for t in c.sim.admin.tasks())
        ),
        timeout=20,
        what="the stop task running",
    )
    c.fault(c.sim.admin.set_node_offline, ct.node.name)
    job = wait_job(job.pk)
    assert job.status == JobStatus.FAILED
    assert "595" in job.error and "Deleting off-delete failed" in job.error
    assert f"{ct.node.name} is not answering" in job.error
    assert Container.objects.get(pk=ct.pk).status == ContainerStatus.ERROR
    return job


def status_595(c: Case) -> Job:
    c.fault(c.sim.admin.fail_next_requests, "POST", CT + "$", 10, 595, "No route to host")
    job = wait_job(c.create("s595").pk)
    assert job.status == JobStatus.FAILED and job.attempts == 4
    assert "595 No route to host" in job.error and "gave up after 4 attempts" in job.error
    assert Container.objects.get(pk=job.container_id).status == ContainerStatus.DELETED
    assert c.guests_named("s595") == []
    return job


def status_596(c: Case) -> Job:
    c.fault(c.sim.admin.fail_next_requests, ALL, CT, 2, 596, "Connection timed out")
    job = wait_job(c.create("s596").pk)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.attempts == 3
    assert len(c.guests_named("s596")) == 1
    return job


def no_quorum(c: Case) -> Job:
    c.fault(c.sim.admin.set_quorum, False)
    job = wait_job(c.create("quorumless").pk)
    assert job.status == JobStatus.FAILED
    assert "no quorum" in job.error and "gave up after 4 attempts" in job.error
    assert Container.objects.get(pk=job.container_id).status == ContainerStatus.DELETED
    return job


def task_failure(c: Case) -> Job:
    c.fault(c.sim.admin.fail_next_tasks, "vzcreate", 1, "unpacking template failed - EIO")
    job = wait_job(c.create("taskfail").pk)
    assert job.status == JobStatus.FAILED and job.error_code == "proxmox_task_failed"
    assert "unpacking template failed - EIO" in job.error
    assert c.guests_named("taskfail") == []
    return job


def latency_create(c: Case) -> Job:
    c.quiet_test_process()
    c.fault(c.sim.admin.set_latency, FAULT_TIMEOUT + 1.0)
    job = wait_job(c.create("slow-create").pk, timeout=90)
    c.sim.admin.reset_faults()
    assert job.status == JobStatus.FAILED
    # The undo could not ask Proxmox: it must not say it left nothing, nor free the address.
    assert "nothing was left" not in job.error.lower()
    container = Container.objects.get(pk=job.container_id)
    assert container.status == ContainerStatus.ERROR
    # Proxmox did create it, after the portal stopped waiting.
    wait_for(lambda: c.guests_named("slow-create"), timeout=10, what="the late CT")
    return job


def latency_start(c: Case) -> Job:
    ct = c.ready("slow-start")
    stop = wait_job(services.container_stop(container=ct, actor=ct.owner).pk)
    assert stop.status == JobStatus.SUCCEEDED, stop.error
    ct.refresh_from_db()
    c.fault(c.sim.admin.set_latency, FAULT_TIMEOUT + 1.0)
    job = wait_job(services.container_start(container=ct, actor=ct.owner).pk, timeout=90)
    assert job.status == JobStatus.FAILED
    assert job.error_code == "proxmox_unavailable" and "gave up after 4 attempts" in job.error
    return job


def latency_delete(c: Case) -> Job:
    ct = c.ready("slow-delete")
    c.fault(c.sim.admin.set_latency, FAULT_TIMEOUT + 1.0)
    job = wait_job(services.container_delete(container=ct, actor=ct.owner).pk, timeout=90)
    c.sim.admin.reset_faults()
    assert job.status == JobStatus.FAILED
    assert job.error_code == "proxmox_unavailable" and "gave up after 4 attempts" in job.error
    assert Container.objects.get(pk=ct.pk).status == ContainerStatus.ERROR
    return job


def lock_held_then_released(c: Case) -> Job:
    ct = c.ready("locked-delete")
    c.fault(c.sim.admin.hold_lock, ct.vmid, "backup")
    c.later(1.5, lambda: c.sim.admin.release_lock(ct.vmid))
    job = wait_job(services.container_delete(container=ct, actor=ct.owner).pk)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert c.guests_named("locked-delete") == []
    return job


def lock_held_for_good(c: Case) -> Job:
    ct = c.ready("locked-resize")
    c.fault(c.sim.admin.hold_lock, ct.vmid, "backup")
    job = wait_job(services.container_resize(container=ct, actor=ct.owner, cores=2).pk)
    assert job.status == JobStatus.FAILED
    assert "locked" in job.error and "gave up after 4 attempts" in job.error
    c.sim.admin.release_lock(ct.vmid)
    return job


def settle_by_reconcile(job: Job) -> None:
    """The later check the undo leaves an unsure container to: with Proxmox reachable again
    it finds no CT and releases what the container held."""
    from containers.reconcile import container_reconcile

    container = Container.objects.get(pk=job.container_id)
    found = container_reconcile(container=container, actor=None)
    container.refresh_from_db()
    assert container.status == ContainerStatus.DELETED, found


def token_revoked(c: Case) -> Job:
    c.quiet_test_process()
    token_id = Node.objects.filter(site=c.site).values_list("token_id", flat=True).first()
    Node.objects.filter(site=c.site).update(token_id=REVOCABLE_TOKEN)
    c.fault(c.sim.admin.revoke_token, REVOCABLE_TOKEN)
    job = wait_job(c.create("revoked").pk)
    assert job.status == JobStatus.FAILED and job.attempts == 1  # not worth retrying
    assert "rejected the node's API token" in job.error and "401" not in job.error_code
    # The undo cannot ask Proxmox either: it claims nothing and keeps the allocations.
    assert "could not check whether CT" in job.error
    assert Container.objects.get(pk=job.container_id).status == ContainerStatus.ERROR
    Node.objects.filter(site=c.site).update(token_id=token_id)  # the operator mends it
    settle_by_reconcile(job)
    return job


def wrong_ca(c: Case) -> Job:
    c.quiet_test_process()
    ca_bundle = Node.objects.filter(site=c.site).values_list("ca_bundle", flat=True).first()
    Node.objects.filter(site=c.site).update(ca_bundle=certifi.where())
    count_fault()
    job = wait_job(c.create("wrongca").pk)
    assert job.status == JobStatus.FAILED and job.attempts == 1
    assert "TLS verification of the Proxmox API failed" in job.error
    assert "could not check whether CT" in job.error
    assert Container.objects.get(pk=job.container_id).status == ContainerStatus.ERROR
    Node.objects.filter(site=c.site).update(ca_bundle=ca_bundle)
    settle_by_reconcile(job)
    return job


def _killed_at(step: str, arm: Callable[[Case], None], seen: Callable[[Case, Job], Any]):
    def case(c: Case) -> Job:
        arm(c)
        job = c.create(f"kill-{step.replace('_', '-')}")
        wait_for(lambda: seen(c, job), timeout=30, what=f"job {job.pk} in step {step}")
        c.fw.kill()  # SIGKILL to the worker's process group, mid-step
        count_fault()
        assert Job.objects.get(pk=job.pk).status == JobStatus.RUNNING
        if not c.gateway_worker.process.alive():
            c.gateway_worker.start()
        job = c.resume_after_kill(job)
        assert job.status == JobStatus.SUCCEEDED, job.error
        assert job.attempts >= 2
        assert len(c.guests_named(job.container.hostname)) == 1
        assert Container.objects.get(pk=job.container_id).status == ContainerStatus.RUNNING
        return job

    return case


def _task_running(step: str) -> Callable[[Case, Job], Any]:
    return lambda c, job: c.step(job, step).get("upid")


def _held_call(c: Case, job: Job) -> bool:
    return bool(c.sim.admin.state()["faults"]["delayed"])


kill_in_create = _killed_at(
    "create",
    lambda c: c.fault(c.sim.admin.set_task_seconds, "vzcreate", 2.0),
    _task_running("create"),
)
kill_in_start = _killed_at(
    "start", lambda c: c.fault(c.sim.admin.set_task_seconds, "vzstart", 2.0), _task_running("start")
)
kill_in_inspect = _killed_at(
    "inspect",
    lambda c: c.fault(c.sim.admin.delay_next_requests, "GET", r"/status/current$", 1.0),
    _held_call,
)
kill_in_gateway = _killed_at(
    "gateway",
    lambda c: c.gateway_worker.stop(),  # no apply can happen: the job waits in the step
    lambda c, job: c.step(job, "gateway").get("generation"),
)


def redis_restarted_during_burst(c: Case) -> Job:
    """Redis goes away with the queued messages in it (no persistence, as a crash): the jobs
    are in the database, and the reconciler sends them again once Redis is back."""
    redis = c.request.getfixturevalue("redis_control")
    c.quiet_test_process()
    burst = [c.create(f"burst{i}") for i in range(4)]
    redis.stop()
    count_fault()
    c.later(1.0, redis.start)
    c.request.addfinalizer(lambda: redis.up() or redis.start())
    refused = []
    for i in range(4, 8):
        try:
            burst.append(c.create(f"burst{i}"))
        except Exception as exc:
            refused.append(exc)
    wait_for(redis.up, timeout=10, what="redis back")
    survived = c.fw.alive()
    old_log = "" if survived else c.fw.worker.process.log_text()[-3000:]
    c.fw.ensure()

    restarts = []

    def all_final() -> bool:
        # kombu may crash the worker a moment after Redis is back (restoring its unacked
        # messages through the dropped connection: "Unrecoverable error: AttributeError");
        # systemd restarts it (Restart=always in deploy/portal/cluster-portal-worker.service).
        if not c.fw.alive():
            restarts.append(c.fw.worker.process.log_text()[-600:])
            c.fw.ensure()
        reconcile_jobs()  # what beat does every minute in production
        return not Job.objects.filter(status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).exists()

    try:
        wait_for(all_final, timeout=60, interval=1.0, what="every job of the burst final")
    except AssertionError as exc:
        import redis as redis_client

        backlog = redis_client.Redis.from_url(redis.url).llen("proxmox")
        raise AssertionError(
            f"{exc}; refused: {refused}; worker survived: {survived}, alive now: "
            f"{c.fw.alive()}, restarted {len(restarts)} times; messages waiting in Redis: "
            f"{backlog}\n{old_log}\n" + _describe(burst)
        ) from None
    jobs = [Job.objects.get(pk=j.pk) for j in burst]
    assert [j.status for j in jobs] == [JobStatus.SUCCEEDED] * len(jobs), [j.error for j in jobs]
    return jobs[-1]


def _describe(jobs: list[Job]) -> str:
    lines = []
    for j in Job.objects.filter(pk__in=[j.pk for j in jobs]):
        steps = ",".join(f"{s['name']}={s['state']}" for s in j.steps)
        tail = [e.message for e in j.log_entries.order_by("-id")[:2]]
        lines.append(f"{j.pk} {j.status} attempts={j.attempts} {steps} {tail}")
    return "\n".join(lines)


def gateway_killed_mid_apply(c: Case) -> Job:
    """SIGKILL the gateway's worker while it writes a release: the live tree is the old
    one or the new one, never a mix; the next apply after it restarts covers everything."""
    import hashlib
    import json

    from networking.publishing import route_add
    from networking.services import request_apply, wait_for_apply

    paths = c.request.getfixturevalue("local_gateway").paths()
    ct = c.ready("gw-victim")
    hits = 0
    for rnd in range(8):
        if hits >= 2:
            break
        before = paths.live_manifest() or {}
        old, old_generation = before.get("content_hash"), int(before.get("generation") or 0)
        for entry in paths.staging.glob("*") if paths.staging.exists() else []:
            entry.rename(entry.with_name(f"old-{entry.name}"))  # only this round's stage counts
        route_add(container=ct, name=f"svc{rnd}", backend_port=8000 + rnd)
        try:
            wait_for(
                lambda: (
                    paths.staging.exists()
                    and any(not p.name.startswith("old-") for p in paths.staging.iterdir())
                ),
                timeout=5,
                interval=0.002,
                what="an apply writing its release",
            )
            c.gateway_worker.kill()
            count_fault()
            hits += 1
        except AssertionError:
            pass  # the apply was too quick this round
        live = paths.live_release()
        assert live is not None
        manifest = json.loads((live / "manifest.json").read_text())
        for rel, digest in manifest["files"].items():
            got = hashlib.sha256((live / rel).read_text().encode()).hexdigest()
            assert got == digest, f"{rel} in the live release does not match its manifest"
        # Old or new: the tree it was serving, or a later generation's complete tree.
        assert manifest["content_hash"] == old or manifest["generation"] > old_generation
        if not c.gateway_worker.process.alive():
            c.gateway_worker.start()
    assert hits >= 1, "no apply was caught mid-write in 8 rounds"
    generation = request_apply(c.site, reason="after the kills")
    revision = wait_for_apply(c.site, generation, timeout=30)
    assert revision is None or revision.succeeded
    manifest = paths.live_manifest() or {}
    served = set(manifest.get("routes", []))
    wanted = set(ct.routes.values_list("subdomain", flat=True))
    assert wanted <= {r.split(".")[0] for r in served} | served, (wanted, served)
    return Job.objects.filter(container=ct).latest("created_at")


CASES: dict[str, Callable[[Case], Job]] = {
    "node-offline-mid-create": node_offline_mid_create,
    "node-offline-mid-delete": node_offline_mid_delete,
    "595": status_595,
    "596": status_596,
    "no-quorum": no_quorum,
    "task-failure": task_failure,
    "latency-create": latency_create,
    "latency-start": latency_start,
    "latency-delete": latency_delete,
    "lock-held-released": lock_held_then_released,
    "lock-held-for-good": lock_held_for_good,
    "token-revoked-401": token_revoked,
    "wrong-ca": wrong_ca,
    "sigkill-create": kill_in_create,
    "sigkill-start": kill_in_start,
    "sigkill-inspect": kill_in_inspect,
    "sigkill-gateway": kill_in_gateway,
    "redis-restarted-during-burst": redis_restarted_during_burst,
    "gateway-killed-mid-apply": gateway_killed_mid_apply,
}


@pytest.mark.parametrize("name", list(CASES))
def test_fault(name, site, fault_sim, fault_worker, gateway_worker, request) -> None:
    fault_worker.ensure()
    case = Case(site, fault_sim, fault_worker, gateway_worker, request)
    try:
        job = CASES[name](case)
    finally:
        fault_sim.admin.reset_faults()
        probe_nodes()  # a node a case took offline is active again for the next case
        if not gateway_worker.process.alive():  # a case that stopped it must not starve others
            gateway_worker.start()
    assert job.is_final and (job.error or job.status == JobStatus.SUCCEEDED)
    # Everything the case set off has ended (a late task on the simulator included).
    wait_for(
        lambda: not Job.objects.filter(status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).exists(),
        timeout=30,
        what="every job final",
    )
    time.sleep(0.5)  # a task Proxmox accepted just before the fault ends on its own
    assert_portal_agrees_with_cluster(site, fault_sim, baseline=site.baseline)
