"""Celery tasks: load by id, call the runner, retry what is transient."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, shared_task

from . import jobs

log = logging.getLogger(__name__)


@shared_task(
    bind=True, name="containers.run_job", acks_late=True, max_retries=None, ignore_result=True
)
def run_job(self: Task, job_id: str) -> None:
    try:
        jobs.run(job_id, worker=str(self.request.hostname or "worker"))
    except jobs.RetryLater as later:
        raise self.retry(countdown=later.countdown) from None


def enqueue_job(job_id: str) -> None:
    """Send a job to the proxmox queue; the job id is the Celery task id."""
    run_job.apply_async(args=(job_id,), task_id=job_id, queue="proxmox")


@shared_task(name="containers.reconcile_jobs", ignore_result=True)
def reconcile_jobs() -> dict[str, Any]:
    """Resume jobs whose worker is gone (the claim decides who runs them)."""
    resumed = []
    for job in jobs.stale_jobs():
        log.warning(
            "job %s (%s) looks abandoned by %s; re-enqueueing",
            job.pk,
            job.status,
            job.worker or "no worker",
        )
        enqueue_job(str(job.pk))
        resumed.append(str(job.pk))
    return {"resumed": resumed}


@shared_task(name="containers.probe_nodes", ignore_result=True)
def probe_nodes() -> dict[str, str]:
    """One status call per node: offline nodes are marked, recovered ones made active."""
    from . import health

    return health.probe_nodes()
