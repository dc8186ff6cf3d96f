"""The job runner: claims a job, runs its kind, retries what is transient, and undoes what
a failure left half-made. It knows nothing about any particular kind (`containers.jobs.kind`).

Every status change is a conditional update on (id, status, attempt), so a job has
at most one live runner: a second delivery of the same message, or a worker that
comes back after its lease expired, finds nothing to claim and returns quietly.
Steps are idempotent and recorded on the job, so a job that is resumed (after a
retry or a lost worker) skips what is done and adopts what a previous attempt made.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from auth.notification_models import NotificationKind
from auth.notifications import notify
from containers import health, services
from containers.models import ContainerStatus, Job, JobKind, JobStatus, LogLevel, StepState
from containers.proxmox import ProxmoxUnavailable
from portal.celery import backoff as celery_backoff
from portal.errors import ErrorCode, PortalError, UpstreamUnavailable

from .context import JobContext, LeaseLost, RetryLater, _iso
from .kind import kind_of, kinds

log = logging.getLogger(__name__)


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
        ctx.current_step.update(state=StepState.FAILED, finished_at=_iso(timezone.now()))
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
    """Seconds before a job's next attempt (JOB_RETRY_BACKOFF, doubling, at most _MAX)."""
    return celery_backoff(
        attempt, base=settings.JOB_RETRY_BACKOFF, cap=settings.JOB_RETRY_BACKOFF_MAX
    )


def run(job_id: str, *, worker: str) -> None:
    """Run (or resume) one job. Raises RetryLater when a transient error should be retried."""
    job = claim(job_id, worker)
    if job is None:
        log.info("job %s: nothing to claim (finished, or running elsewhere)", job_id)
        return
    unknown = "" if job.kind in kinds() else f"no job kind {job.kind!r} is registered"
    if job.container is None or unknown:
        Job.objects.filter(pk=job.pk).update(
            status=JobStatus.FAILED,
            error=unknown or "its container is gone",
            error_code=ErrorCode.INVALID_JOB_KIND if unknown else "not_found",
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
        result = kind_of(job.kind).run(ctx) or {}
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
                    ctx.current_step["state"] = StepState.PENDING
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
                ctx.current_step["state"] = StepState.PENDING
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


def _handle_failure(ctx: JobContext, code: str, message: str) -> None:
    step = ctx.current_step
    where = f" at step '{step['title']}'" if step else ""
    kind = kind_of(ctx.job.kind)
    verb = kind.verb
    try:
        outcome = kind.undo(ctx)
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
    kind.failed(ctx.job, text)
    _notify_failure(ctx, code, text)


def _notify_failure(ctx: JobContext, code: str, text: str) -> None:
    """Tell the container's owner (and whoever asked for the job) that it failed; a mend
    is the reconciler's, so operators hear of it. Queued on commit, never raises."""
    job, container = ctx.job, ctx.container
    notify(
        kind=NotificationKind.JOB_FAILED,
        subject=text.split(":", 1)[0][:150],
        text=f"{text}\n\nJob {job.pk} ({job.kind}); code {code}.\n",
        users=[u for u in (container.owner, job.actor) if u is not None],
        operators=job.kind == JobKind.MEND,
        site=container.site,
        data={
            "job": str(job.pk),
            "job_kind": job.kind,
            "container": container.hostname,
            "site": container.site.slug,
            "error_code": code,
        },
    )


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
