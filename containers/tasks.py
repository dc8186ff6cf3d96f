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


@shared_task(name="containers.reconcile_sites", ignore_result=True)
def reconcile_sites() -> dict[str, str]:
    """The periodic reconcile of every site with Proxmox (see containers.reconciler)."""
    from . import reconciler

    return {str(run.site_id): run.summary for run in reconciler.reconcile_all()}


@shared_task(name="containers.destroy_orphan", acks_late=True, ignore_result=True)
def destroy_orphan(finding_id: int) -> str:
    """An operator's *destroy* on an orphan the reconciler reported."""
    from . import orphans

    return orphans.destroy_orphan_now(finding_id)


@shared_task(name="containers.sweep_deployments", ignore_result=True)
def sweep_deployments() -> dict[str, list[str]]:
    """Daily: warn the owners of deployments that expire soon, remove the expired ones."""
    from .deployment_expiry import deployments_sweep

    report = deployments_sweep()
    return {"warned": report.warned, "removed": report.removed, "failed": report.failed}


@shared_task(name="containers.sweep_containers", ignore_result=True)
def sweep_containers() -> dict[str, Any]:
    """Daily: container expiry (warn, stop, delete), then the retention sweeps."""
    from .container_expiry import containers_sweep
    from .retention import retention_sweep

    report = containers_sweep()
    return {
        "warned": report.warned,
        "stopped": report.stopped,
        "deleted": report.deleted,
        "failed": report.failed,
        "pruned": retention_sweep(),
    }


@shared_task(name="containers.poll_metrics", ignore_result=True)
def poll_metrics() -> dict[str, Any]:
    """Every METRICS_POLL_INTERVAL: each site's latest figures, one API call per site."""
    from .metrics.poll import metrics_poll_all

    return {r.site: r.error or r.written for r in metrics_poll_all()}


@shared_task(name="containers.sweep_wazuh_agents", ignore_result=True)
def sweep_wazuh_agents() -> dict[str, str]:
    """Daily: remove the Wazuh agents of containers that are gone (containers.wazuh.sweep)."""
    from .wazuh.sweep import wazuh_sweep_all

    return {run.site.slug: run.summary for run in wazuh_sweep_all()}


@shared_task(name="containers.poll_wazuh", ignore_result=True)
def poll_wazuh() -> dict[str, Any]:
    """Every WAZUH_POLL_INTERVAL: each Wazuh site's agents, one paged list per site."""
    from .wazuh.poll import wazuh_poll_all

    return {r.site: r.error or r.updated for r in wazuh_poll_all()}


@shared_task(name="containers.refill_pools", ignore_result=True)
def refill_pools(site_id: int | None = None) -> dict[str, str]:
    """The warm pool's refill (containers/pool/refill.py), on its own queue `pool`: beat
    runs it for every site; a claim or a target change asks for its site's."""
    from networking.models import Site

    from .pool.refill import refill_all, refill_site

    if site_id is None:
        return refill_all()
    site = Site.objects.filter(pk=site_id).first()
    return {site.slug: refill_site(site).summary()} if site else {}


def enqueue_refill(site_id: int) -> None:
    from portal.celery import POOL_QUEUE

    refill_pools.apply_async(args=(site_id,), queue=POOL_QUEUE)
