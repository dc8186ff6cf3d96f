"""The job runner: claims a job, runs its steps on Proxmox, retries what is transient,
and undoes what a failure left half-made.

Every status change is a conditional update on (id, status, attempt), so a job has
at most one live runner: a second delivery of the same message, or a worker that
comes back after its lease expired, finds nothing to claim and returns quietly.
Steps are idempotent and recorded on the job, so a job that is resumed (after a
retry or a lost worker) skips what is done and adopts what a previous attempt made.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from auth import access  # identity steps: the directory group and the Proxmox ACLs
from portal.errors import PortalError, ResourceExhausted, UpstreamError, UpstreamUnavailable

from . import health, mend, services
from .models import Container, ContainerStatus, Job, JobKind, JobLogEntry, JobStatus, LogLevel
from .proxmox import ProxmoxClient, ProxmoxError, ProxmoxNotFound, ProxmoxUnavailable, VmidTaken
from .tags import is_ours, managed_tags

log = logging.getLogger(__name__)

STEP_PLANS: dict[str, list[tuple[str, str]]] = {
    JobKind.CREATE: [
        ("create", "Create the container on Proxmox"),
        ("start", "Start the container"),
        ("inspect", "Check its status and address"),
        ("access_group", "Create the directory access group"),
        ("realm_sync", "Sync the Proxmox LDAP realm (first container)"),
        ("proxmox_acl", "Grant the owner access in Proxmox"),
        ("gateway", "Publish its name and ports on the gateway"),
    ],
    JobKind.DELETE: [
        ("revoke", "Revoke access in Proxmox"),
        ("access_group", "Remove the directory access group"),
        ("stop", "Stop the container"),
        ("destroy", "Destroy the container and its disks"),
        ("release", "Release its name and addresses"),
        ("gateway", "Remove its name and ports from the gateway"),
    ],
    JobKind.START: [("start", "Start the container"), ("inspect", "Check its status")],
    JobKind.STOP: [("stop", "Shut the container down")],
    JobKind.RESTART: [("reboot", "Restart the container"), ("inspect", "Check its status")],
    JobKind.RESIZE: [("config", "Change cores, memory and swap"), ("disk", "Grow the disk")],
    JobKind.ACCESS: [
        ("access_group", "Update the directory access group"),
        ("realm_sync", "Sync the Proxmox LDAP realm (new users)"),
        ("proxmox_acl", "Update access in Proxmox"),
    ],
    JobKind.MEND: [
        ("config", "Put back the portal's name, address, resources and tags"),
        ("access_group", "Update the directory access group"),
        ("realm_sync", "Sync the Proxmox LDAP realm (new users)"),
        ("proxmox_acl", "Update access in Proxmox"),
    ],
}

MAX_VMID_RETRIES = 10


def plan_steps(kind: str) -> list[dict[str, Any]]:
    return [{"name": name, "title": title, "state": "pending"} for name, title in STEP_PLANS[kind]]


class RetryLater(Exception):
    """Raised to the Celery task: run this job again after `countdown` seconds."""

    def __init__(self, countdown: float) -> None:
        super().__init__(f"retry in {countdown:.1f}s")
        self.countdown = countdown


class LeaseLost(Exception):
    """Another worker took the job over (ours was presumed dead); stop touching it."""


def _iso(dt: Any) -> str:
    return dt.isoformat(timespec="milliseconds")


class JobContext:
    """What a handler needs: the job, its container, a Proxmox client, logging and steps.

    Step states and log lines are kept in memory and written together by `flush`, in
    one transaction: before every wait on Proxmox (so a watcher sees the step it is
    in), when a step records a task it started, on a heartbeat and at the end. A
    worker lost between flushes loses only the record of steps it finished since,
    and those are re-run: steps are idempotent.
    """

    def __init__(self, job: Job, worker: str) -> None:
        self.job = job
        self.attempt = job.attempts
        self.worker = worker
        assert job.container is not None
        self.container: Container = job.container
        self._last_beat = time.monotonic()
        self._pending: list[JobLogEntry] = []
        self._dirty = False
        self.current_step: dict[str, Any] | None = None

    @property
    def client(self) -> ProxmoxClient:
        return ProxmoxClient.for_node(self.container.node)

    @property
    def node(self) -> str:
        return self.container.node.name

    def _mine(self) -> Any:
        return Job.objects.filter(pk=self.job.pk, status=JobStatus.RUNNING, attempts=self.attempt)

    def log(self, message: str, *, level: str = LogLevel.INFO) -> None:
        step = self.current_step["name"] if self.current_step else ""
        self._pending.append(
            JobLogEntry(
                job=self.job, level=level, step=step, message=message, created_at=timezone.now()
            )
        )

    @property
    def _unsaved(self) -> bool:
        return self._dirty or bool(self._pending)

    def _write_log(self) -> None:
        if self._pending:
            JobLogEntry.objects.bulk_create(self._pending)
            self._pending = []

    def _progress(self) -> int:
        steps = self.job.steps
        done = sum(1 for s in steps if s["state"] in ("done", "skipped"))
        return int(100 * done / len(steps)) if steps else 0

    def flush(self, **fields: Any) -> None:
        """Write the steps, progress and pending log lines (and `fields`) if this is still our job."""
        self.job.progress = fields.pop("progress", None) or self._progress()
        with transaction.atomic():
            if not self._mine().update(
                steps=self.job.steps,
                progress=self.job.progress,
                heartbeat_at=timezone.now(),
                **fields,
            ):
                raise LeaseLost(str(self.job.pk))
            self._write_log()
        self._dirty = False
        self._last_beat = time.monotonic()

    def save_steps(self) -> None:
        """Persist now: a step calls this once it has started a Proxmox task (its upid)."""
        self.flush()

    def heartbeat(self, *, force: bool = False) -> None:
        """Tell the others this job's worker is alive; raise LeaseLost if it was taken over."""
        if self._unsaved:
            self.flush()
            return
        now = time.monotonic()
        if not force and now - self._last_beat < min(2.0, settings.JOB_LEASE_SECONDS / 4):
            return
        self._last_beat = now
        if not self._mine().update(heartbeat_at=timezone.now()):
            raise LeaseLost(str(self.job.pk))

    def step(self, name: str) -> dict[str, Any]:
        for st in self.job.steps:
            if st["name"] == name:
                return st
        raise KeyError(name)

    def run_step(self, name: str, fn: Callable[[dict[str, Any]], str | None]) -> None:
        """Run one step unless an earlier attempt finished it; fn may return 'skipped'."""
        st = self.step(name)
        if st["state"] in ("done", "skipped"):
            return
        self.current_step = st
        resumed = st["state"] == "running"
        st.update(state="running", started_at=st.get("started_at") or _iso(timezone.now()))
        self._dirty = True
        self.log(f"{st['title']} (resumed)" if resumed else st["title"])
        outcome = fn(st)
        st.update(state=outcome or "done", finished_at=_iso(timezone.now()))
        self._dirty = True
        self.current_step = None

    def wait(self, upid: str) -> str:
        """Wait for a Proxmox task, keeping the job's lease alive while it runs."""
        if self._unsaved:
            self.flush()
        status = self.client.wait_task(upid, on_poll=self.heartbeat)
        if status != "OK":
            self.log(f"Proxmox task finished with {status}", level=LogLevel.WARNING)
        return status


# -- claiming and finishing ------------------------------------------------------------------
def claim(job_id: str, worker: str) -> Job | None:
    """Take a job that is queued, or running under a worker whose lease has expired."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.JOB_LEASE_SECONDS)
    claimable = Q(status=JobStatus.QUEUED) | Q(status=JobStatus.RUNNING, heartbeat_at__lt=stale)
    updated = Job.objects.filter(claimable, pk=job_id).update(
        status=JobStatus.RUNNING,
        attempts=F("attempts") + 1,
        worker=worker[:200],
        heartbeat_at=now,
        started_at=Coalesce("started_at", now),
    )
    if not updated:
        return None
    return Job.objects.select_related(
        "container", "container__node", "container__site", "container__template", "container__owner"
    ).get(pk=job_id)


def _finish(ctx: JobContext, result: dict[str, Any]) -> None:
    ctx.log("Done")
    ctx.flush(
        status=JobStatus.SUCCEEDED,
        progress=100,
        result=result,
        finished_at=timezone.now(),
        error="",
        error_code="",
    )


def _fail(ctx: JobContext, code: str, message: str) -> None:
    if ctx.current_step:
        ctx.current_step.update(state="failed", finished_at=_iso(timezone.now()))
        ctx.job.steps = [
            s if s["name"] != ctx.current_step["name"] else ctx.current_step for s in ctx.job.steps
        ]
    ctx.log(message, level=LogLevel.ERROR)
    with transaction.atomic():
        Job.objects.filter(pk=ctx.job.pk, status__in=[JobStatus.RUNNING, JobStatus.QUEUED]).update(
            status=JobStatus.FAILED,
            steps=ctx.job.steps,
            progress=ctx._progress(),
            error_code=code[:64],
            error=message,
            finished_at=timezone.now(),
        )
        ctx._write_log()


def _requeue(ctx: JobContext) -> None:
    try:
        ctx.flush(status=JobStatus.QUEUED)
    except LeaseLost:
        log.warning("job %s was taken over by another worker; not requeueing it", ctx.job.pk)


def backoff(attempt: int) -> float:
    return float(
        min(settings.JOB_RETRY_BACKOFF * (2 ** max(attempt - 1, 0)), settings.JOB_RETRY_BACKOFF_MAX)
    )


def run(job_id: str, *, worker: str) -> None:
    """Run (or resume) one job. Raises RetryLater when a transient error should be retried."""
    job = claim(job_id, worker)
    if job is None:
        log.info("job %s: nothing to claim (finished, or running elsewhere)", job_id)
        return
    if job.container is None:
        Job.objects.filter(pk=job.pk).update(
            status=JobStatus.FAILED,
            error="its container is gone",
            error_code="not_found",
            finished_at=timezone.now(),
        )
        return
    ctx = JobContext(job, worker)
    if job.attempts > settings.JOB_MAX_ATTEMPTS:
        _give_up(ctx, UpstreamUnavailable("its worker was lost too many times"))
        return
    try:
        wait = health.hold_job(ctx)
    except health.NodeUnavailable as exc:
        _handle_failure(ctx, exc.code, exc.message)
        return
    if wait is not None:
        _wait_for_node(ctx, wait)
        return
    try:
        result = HANDLERS[job.kind](ctx) or {}
    except LeaseLost:
        log.warning("job %s was taken over by another worker; leaving it", job_id)
        return
    except UpstreamUnavailable as exc:
        if isinstance(exc, ProxmoxUnavailable) and health.is_node_down(exc):
            if health.confirm_down(ctx, exc):
                ctx.log(
                    f"{health.not_answering(ctx.container.node, exc.reason)}; "
                    "the job waits for it without spending an attempt",
                    level=LogLevel.WARNING,
                )
                if ctx.current_step:
                    ctx.current_step["state"] = "pending"
                _wait_for_node(ctx, float(settings.NODE_PROBE_INTERVAL))
                return
            # Named from here on: a job that gives up says which node failed it.
            exc.message = f"Proxmox is unavailable on {ctx.node} ({exc.reason})"
        if job.attempts < settings.JOB_MAX_ATTEMPTS:
            countdown = backoff(job.attempts)
            ctx.log(
                f"{exc.message}; retrying in {countdown:.1f} s (attempt {job.attempts} of "
                f"{settings.JOB_MAX_ATTEMPTS})",
                level=LogLevel.WARNING,
            )
            if ctx.current_step:
                ctx.current_step["state"] = "pending"
            _requeue(ctx)
            raise RetryLater(countdown) from exc
        _give_up(ctx, exc)
    except PortalError as exc:
        _handle_failure(ctx, exc.code, exc.message)
    except SoftTimeLimitExceeded:
        _handle_failure(ctx, "timeout", f"the job took longer than {settings.JOB_TIME_LIMIT} s")
    except Exception as exc:
        log.exception("job %s failed unexpectedly", job_id)
        _handle_failure(
            ctx,
            "internal_error",
            f"an unexpected error ({exc.__class__.__name__}); an operator can see the worker's log",
        )
    else:
        try:
            _finish(ctx, result)
        except LeaseLost:
            log.warning("job %s was taken over by another worker before it finished", job_id)


def _wait_for_node(ctx: JobContext, countdown: float) -> None:
    """Back to the queue without spending the attempt; look again in `countdown` seconds."""
    try:
        ctx.flush(status=JobStatus.QUEUED, attempts=F("attempts") - 1)
    except LeaseLost:
        log.warning("job %s was taken over by another worker; not requeueing it", ctx.job.pk)
        return
    raise RetryLater(countdown)


def _give_up(ctx: JobContext, exc: PortalError) -> None:
    _handle_failure(
        ctx, exc.code, f"{exc.message}; gave up after {ctx.job.attempts} attempts, try again later"
    )


VERBS: dict[str, str] = {
    JobKind.CREATE: "Creating",
    JobKind.DELETE: "Deleting",
    JobKind.START: "Starting",
    JobKind.STOP: "Stopping",
    JobKind.RESTART: "Restarting",
    JobKind.RESIZE: "Resizing",
    JobKind.ACCESS: "Updating access to",
    JobKind.MEND: "Mending",
}


def _handle_failure(ctx: JobContext, code: str, message: str) -> None:
    step = ctx.current_step
    where = f" at step '{step['title']}'" if step else ""
    verb = VERBS[ctx.job.kind]
    try:
        outcome = UNDO[ctx.job.kind](ctx)
    except Exception as exc:  # the undo is best effort; reconciliation finishes what it cannot
        log.exception("job %s: undo failed", ctx.job.pk)
        # Nothing was checked: the container keeps what it holds, marked for an operator.
        services.container_set_status(
            container=ctx.container, to=ContainerStatus.ERROR, message=f"cleaning up failed: {exc}"
        )
        outcome = f"cleaning up failed too ({exc}); an operator has been left to finish it"
    text = f"{verb} {ctx.container.hostname} failed{where}: {message}"
    if outcome:
        text += f". {outcome[0].upper()}{outcome[1:]}"
    _fail(ctx, code, text)


# -- helpers -----------------------------------------------------------------------------------
def _config_or_none(ctx: JobContext) -> dict[str, Any] | None:
    try:
        return ctx.client.container_config(ctx.node, ctx.container.vmid)
    except ProxmoxNotFound:
        return None


def _wait_unlocked(ctx: JobContext, *, lock: str = "create") -> dict[str, Any] | None:
    """Wait until a previous attempt's task has released the CT's lock."""
    deadline = time.monotonic() + settings.PROXMOX_TASK_TIMEOUT
    while True:
        config = _config_or_none(ctx)
        if config is None or config.get("lock") != lock:
            return config
        if time.monotonic() > deadline:
            raise ProxmoxUnavailable(f"CT {ctx.container.vmid} stayed locked ({lock})")
        ctx.heartbeat()
        time.sleep(settings.PROXMOX_TASK_POLL_INTERVAL)


def _read_state(ctx: JobContext) -> str:
    return str(ctx.client.container_status(ctx.node, ctx.container.vmid).get("status", "unknown"))


# -- create ------------------------------------------------------------------------------------
def _create(ctx: JobContext) -> dict[str, Any]:
    c = ctx.container
    services.container_set_status(container=c, to=ContainerStatus.PROVISIONING)

    def create(st: dict[str, Any]) -> None:
        for _ in range(MAX_VMID_RETRIES):
            if st.get("upid") and st.get("vmid") == c.vmid:
                # An earlier attempt already asked Proxmox: follow that task, adopt its CT.
                ctx.log(f"following the create task of an earlier attempt ({st['upid']})")
                ctx.wait(st["upid"])
                return
            try:
                upid = ctx.client.create_container(
                    ctx.node,
                    vmid=c.vmid,
                    ostemplate=c.template.volid,
                    hostname=c.hostname,
                    cores=c.cores,
                    memory_mib=c.memory_mib,
                    swap_mib=c.swap_mib,
                    rootfs=f"{c.site.rootfs_storage}:{c.disk_gib}",
                    net0=f"name=eth0,bridge={c.site.bridge},hwaddr={c.mac},ip=dhcp,type=veth",
                    tags=managed_tags(c),
                    description=f"Cluster Portal container {c.pk}, owner {c.owner.get_username()}",
                    ssh_public_keys=c.ssh_public_keys,
                )
            except VmidTaken:
                # Ours from an attempt whose answer was lost, or somebody else's. While
                # Proxmox creates a CT its config holds only `lock: create`, so wait for it.
                config = _wait_unlocked(ctx)
                if config is None:
                    continue  # gone again: try the same VMID once more
                if is_ours(config, c):
                    ctx.log(
                        f"CT {c.vmid} already exists on {ctx.node} from an earlier attempt; adopting it"
                    )
                    return
                ctx.log(
                    f"VMID {c.vmid} is used on Proxmox by a guest the portal does not manage; "
                    "taking the next free one",
                    level=LogLevel.WARNING,
                )
                _take_next_vmid(ctx, st)
                continue
            st["upid"] = upid
            st["vmid"] = c.vmid
            ctx.save_steps()
            ctx.log(f"CT {c.vmid} on {ctx.node}: task {upid}")
            ctx.wait(upid)
            return
        raise ResourceExhausted(
            "Proxmox kept refusing the VMIDs offered; an operator should check the cluster",
            code="vmid_exhausted",
        )

    ctx.run_step("create", create)
    ctx.run_step("start", lambda st: _start_ct(ctx, st))
    ctx.run_step("inspect", lambda st: _inspect(ctx, st))
    ctx.run_step("access_group", lambda st: access.access_group_sync(ctx, st))
    ctx.run_step("realm_sync", lambda st: access.realm_sync_step(ctx, st))
    ctx.run_step("proxmox_acl", lambda st: access.proxmox_acl_sync(ctx, st))
    _gateway_step(ctx)
    services.container_set_status(container=c, to=ContainerStatus.RUNNING)
    return {"vmid": c.vmid, "node": ctx.node, "ip": c.ip, "mac": c.mac}


def _take_next_vmid(ctx: JobContext, st: dict[str, Any]) -> None:
    old = ctx.container.vmid
    services.container_reassign_vmid(container=ctx.container, taken=old)
    st.pop("upid", None)
    ctx.log(f"now CT {ctx.container.vmid} on {ctx.node} (was {old})")


def _start_ct(ctx: JobContext, st: dict[str, Any]) -> None:
    if st.get("upid"):
        ctx.wait(st["upid"])  # resumed: the start was already asked for
        return
    try:
        upid = ctx.client.start(ctx.node, ctx.container.vmid)
    except ProxmoxError as exc:
        if "already running" in exc.message:
            ctx.log("it was already running")
            return
        raise
    st["upid"] = upid
    ctx.save_steps()
    ctx.wait(upid)


def _inspect(ctx: JobContext, st: dict[str, Any]) -> None:
    c = ctx.container
    status = ctx.client.container_status(ctx.node, c.vmid)
    if status.get("status") != "running":
        raise ProxmoxError(f"CT {c.vmid} is {status.get('status')} after starting")
    interfaces = ctx.client.interfaces(ctx.node, c.vmid) or []
    seen = sorted(
        a.get("ip-address", "")
        for i in interfaces
        if i.get("name") == "eth0"
        for a in i.get("ip-addresses", [])
        if a.get("ip-address-type") == "inet"
    )
    st["addresses"] = seen
    if seen and c.ip not in seen:
        ctx.log(
            f"eth0 has {', '.join(seen)}, not the reserved {c.ip}: its DHCP reservation is not served yet",
            level=LogLevel.WARNING,
        )
    else:
        ctx.log(
            f"running on {ctx.node}, address {c.ip}"
            + ("" if seen else " (reserved; DHCP has not answered yet)")
        )


def _undo_create(ctx: JobContext) -> str:
    """Remove what a failed create made, and release only what Proxmox said is not there.

    Proxmox may have carried out a request whose answer never came (a timeout, a 595):
    so the allocations are released only when it answers that the CT is absent, or once
    the CT was removed. If it cannot be asked, the container is marked error and keeps
    its VMID, name and addresses until a later check (`reconcile.container_reconcile`).
    """
    c = ctx.container
    access.undo_create_access(ctx)
    try:
        config = _config_or_none(ctx)
    except UpstreamError as exc:
        return _keep_for_a_later_check(
            ctx, f"the portal could not check whether CT {c.vmid} exists on {ctx.node} ({exc})"
        )
    if config is None:
        found = f"Proxmox answers that CT {c.vmid} is not on {ctx.node}"
    elif not is_ours(config, c):
        found = f"CT {c.vmid} on {ctx.node} is a guest the portal does not manage, not this one"
    else:
        try:
            _remove_partial_ct(ctx, config)
        except UpstreamError as exc:
            return _keep_for_a_later_check(
                ctx, f"removing the partly made CT {c.vmid} from {ctx.node} failed ({exc})"
            )
        found = f"the partly made CT {c.vmid} was removed from {ctx.node}"
    services.container_set_status(
        container=c, to=ContainerStatus.DELETED, message="creation failed"
    )
    return f"{found}; its name and address are free again"


def _remove_partial_ct(ctx: JobContext, config: dict[str, Any]) -> None:
    c = ctx.container
    try:
        if config.get("lock") and _wait_unlocked(ctx, lock=str(config["lock"])) is None:
            return  # the locked CT went away while we waited
        ctx.log(f"removing the partly made CT {c.vmid}")
        if _read_state(ctx) == "running":
            ctx.wait(ctx.client.stop(ctx.node, c.vmid))
        ctx.wait(ctx.client.delete_container(ctx.node, c.vmid, purge=True, force=True))
    except ProxmoxNotFound:
        ctx.log(f"CT {c.vmid} is already gone")


def _keep_for_a_later_check(ctx: JobContext, what: str) -> str:
    c = ctx.container
    services.container_set_status(container=c, to=ContainerStatus.ERROR, message=what)
    return (
        f"{what}; {c.hostname} is marked error and keeps its name and address until a later check"
    )


# -- delete ------------------------------------------------------------------------------------
def _delete(ctx: JobContext) -> dict[str, Any]:
    c = ctx.container
    services.container_set_status(container=c, to=ContainerStatus.DELETING)
    gone = {"value": False}

    def stop(st: dict[str, Any]) -> str | None:
        config = _config_or_none(ctx)
        if config is None:
            ctx.log(f"CT {c.vmid} is not on Proxmox (already gone)")
            gone["value"] = True
            return "skipped"
        if not is_ours(config, c):
            ctx.log(
                f"CT {c.vmid} on Proxmox is not this container; leaving it alone",
                level=LogLevel.WARNING,
            )
            gone["value"] = True
            return "skipped"
        if config.get("lock"):
            _wait_unlocked(ctx, lock=str(config["lock"]))
        if _read_state(ctx) != "running":
            return "skipped"
        try:
            ctx.wait(ctx.client.stop(ctx.node, c.vmid))
        except ProxmoxError as exc:
            if "not running" not in exc.message:
                raise
        return None

    def destroy(st: dict[str, Any]) -> str | None:
        if gone["value"]:
            return "skipped"
        try:
            ctx.wait(ctx.client.delete_container(ctx.node, c.vmid, purge=True, force=True))
        except ProxmoxNotFound:
            ctx.log("already gone")
        return None

    def release(st: dict[str, Any]) -> None:
        services.container_set_status(container=c, to=ContainerStatus.DELETED)
        ctx.log(f"released VMID {c.vmid}, {c.ip}, {c.mac} and the name {c.hostname}")

    ctx.run_step("revoke", lambda st: access.proxmox_acl_revoke_all(ctx, st))
    ctx.run_step("access_group", lambda st: access.access_group_remove(ctx, st))
    ctx.run_step("stop", stop)
    ctx.run_step("destroy", destroy)
    ctx.run_step("release", release)
    _gateway_step(ctx)
    return {"vmid": c.vmid}


def _gateway_step(ctx: JobContext) -> None:
    """Ask the site's gateway to apply, and wait until an apply covering this change succeeded."""
    if not any(s["name"] == "gateway" for s in ctx.job.steps):
        return  # a job planned before the gateway step existed

    def publish(st: dict[str, Any]) -> str | None:
        from networking.gateway import wait_for_apply
        from networking.services import request_apply

        site = ctx.container.site
        generation = request_apply(site, reason=f"{ctx.job.kind} {ctx.container.hostname}")
        st["generation"] = generation  # written by the first heartbeat of the wait
        if not settings.GATEWAY_JOB_WAIT:
            ctx.log(
                f"asked the gateway for generation {generation}; not waiting (GATEWAY_JOB_WAIT)"
            )
            return "skipped"
        revision = wait_for_apply(site, generation, on_poll=ctx.heartbeat)
        if revision is None:
            ctx.log(f"gateway generation {generation} applied")
            return None
        ctx.log(
            f"gateway revision {revision.pk} ({revision.status}, generation {revision.generation}) "
            f"in {revision.duration_ms} ms"
        )
        c = ctx.container
        ours = {("route", i) for i in c.routes.values_list("id", flat=True)}
        ours |= {("mapping", i) for i in c.port_mappings.values_list("id", flat=True)}
        ours.add(("host", c.pk))
        for item in revision.excluded:
            if (item.get("kind"), item.get("id")) not in ours:
                continue
            ctx.log(
                f"the gateway left out {item['name']}: {item['reason']}", level=LogLevel.WARNING
            )
        return None

    ctx.run_step("gateway", publish)


def _undo_mark_error(ctx: JobContext) -> str:
    if ctx.container.status == ContainerStatus.DELETED:
        # Only the gateway step can fail after the release: the container is gone.
        return "the container is deleted; the gateway drops its name at its next successful apply"
    services.container_set_status(
        container=ctx.container,
        to=ContainerStatus.ERROR,
        message="the last job failed; see its log",
    )
    return "the container is marked error; deleting it again retries"


# -- start / stop / restart / resize -------------------------------------------------------------
def _start(ctx: JobContext) -> dict[str, Any]:
    ctx.run_step("start", lambda st: _start_ct(ctx, st))
    ctx.run_step("inspect", lambda st: _inspect(ctx, st))
    services.container_set_status(container=ctx.container, to=ContainerStatus.RUNNING)
    return {}


def _stop(ctx: JobContext) -> dict[str, Any]:
    def stop(st: dict[str, Any]) -> None:
        if st.get("upid"):
            ctx.wait(st["upid"])
            return
        try:
            upid = ctx.client.shutdown(ctx.node, ctx.container.vmid, timeout=60, force_stop=True)
        except ProxmoxError as exc:
            if "not running" in exc.message:
                ctx.log("it was not running")
                return
            raise
        st["upid"] = upid
        ctx.save_steps()
        ctx.wait(upid)

    ctx.run_step("stop", stop)
    services.container_set_status(container=ctx.container, to=ContainerStatus.STOPPED)
    return {}


def _restart(ctx: JobContext) -> dict[str, Any]:
    def reboot(st: dict[str, Any]) -> None:
        if st.get("upid"):
            ctx.wait(st["upid"])
            return
        upid = ctx.client.reboot(ctx.node, ctx.container.vmid)
        st["upid"] = upid
        ctx.save_steps()
        ctx.wait(upid)

    ctx.run_step("reboot", reboot)
    ctx.run_step("inspect", lambda st: _inspect(ctx, st))
    services.container_set_status(container=ctx.container, to=ContainerStatus.RUNNING)
    return {}


def _resize(ctx: JobContext) -> dict[str, Any]:
    c, p = ctx.container, ctx.job.params

    def config(st: dict[str, Any]) -> None:
        ctx.client.update_config(
            ctx.node, c.vmid, cores=p["cores"], memory=p["memory_mib"], swap=p["swap_mib"]
        )
        ctx.log(f"cores {p['cores']}, memory {p['memory_mib']} MiB, swap {p['swap_mib']} MiB")

    def disk(st: dict[str, Any]) -> str | None:
        if p["disk_gib"] <= c.disk_gib:
            return "skipped"
        if st.get("upid"):
            ctx.wait(st["upid"])
            return None
        upid = ctx.client.resize_disk(ctx.node, c.vmid, disk="rootfs", size=f"{p['disk_gib']}G")
        if upid:
            st["upid"] = upid
            ctx.save_steps()
            ctx.wait(upid)
        ctx.log(f"disk {p['disk_gib']} GiB")
        return None

    ctx.run_step("config", config)
    ctx.run_step("disk", disk)
    services.container_apply_resources(
        container=c,
        cores=p["cores"],
        memory_mib=p["memory_mib"],
        swap_mib=p["swap_mib"],
        disk_gib=p["disk_gib"],
    )
    return dict(p)


def _undo_sync_state(ctx: JobContext) -> str:
    """After a failed start/stop/restart, record what Proxmox says the CT really is."""
    try:
        state = _read_state(ctx)
    except (UpstreamUnavailable, ProxmoxError):
        return ""
    target = {"running": ContainerStatus.RUNNING, "stopped": ContainerStatus.STOPPED}.get(state)
    if target and ctx.container.status != target:
        services.container_set_status(container=ctx.container, to=target)
    return f"it is {state} on Proxmox"


def _undo_resize(ctx: JobContext) -> str:
    return "its resources are unchanged where Proxmox did not apply them"


HANDLERS: dict[str, Callable[[JobContext], dict[str, Any]]] = {
    JobKind.CREATE: _create,
    JobKind.DELETE: _delete,
    JobKind.START: _start,
    JobKind.STOP: _stop,
    JobKind.RESTART: _restart,
    JobKind.RESIZE: _resize,
    JobKind.ACCESS: access.run_access_job,
    JobKind.MEND: mend.run_mend_job,
}
UNDO: dict[str, Callable[[JobContext], str]] = {
    JobKind.CREATE: _undo_create,
    JobKind.DELETE: _undo_mark_error,
    JobKind.START: _undo_sync_state,
    JobKind.STOP: _undo_sync_state,
    JobKind.RESTART: _undo_sync_state,
    JobKind.RESIZE: _undo_resize,
    JobKind.ACCESS: access.undo_access,
    JobKind.MEND: mend.undo_mend,
}


# -- reconciliation ----------------------------------------------------------------------------
def stale_jobs() -> list[Job]:
    """Running jobs whose worker stopped renewing its lease, and queued jobs left unrun."""
    now = timezone.now()
    lease = timedelta(seconds=settings.JOB_LEASE_SECONDS)
    queued_grace = timedelta(
        seconds=max(settings.JOB_LEASE_SECONDS, 2 * settings.JOB_RETRY_BACKOFF_MAX)
    )
    return list(
        Job.objects.filter(
            Q(status=JobStatus.RUNNING, heartbeat_at__lt=now - lease)
            | Q(status=JobStatus.QUEUED, heartbeat_at__lt=now - queued_grace)
        )
    )
