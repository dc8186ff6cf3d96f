"""The Celery app: queue `proxmox` for hypervisor work, `gateway.<site>` per site, and
`pool` for the warm pool's refills (its own workers: a refill never delays a user's job)."""

from __future__ import annotations

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")

# The warm pool's refills (containers/pool/): low priority, consumed by its own workers.
POOL_QUEUE = "pool"


def configure(app: Celery) -> None:
    from django.conf import settings

    broker = settings.CELERY_BROKER_URL
    transport_options: dict[str, object] = {
        "visibility_timeout": settings.CELERY_VISIBILITY_TIMEOUT
    }
    if broker.startswith("filesystem://"):
        # The file transport has no host, but kombu warns "No hostname was supplied" on
        # every connection without one (each command that queues a job): name loopback.
        if broker == "filesystem://":
            broker = "filesystem://localhost/"
            # Celery reads CELERY_BROKER_URL from the environment itself, over broker_url.
            if os.environ.get("CELERY_BROKER_URL") == "filesystem://":
                os.environ["CELERY_BROKER_URL"] = broker
        folder = settings.CELERY_BROKER_DIR
        (folder / "queue").mkdir(parents=True, exist_ok=True)
        (folder / "processed").mkdir(parents=True, exist_ok=True)
        (folder / "control").mkdir(parents=True, exist_ok=True)
        transport_options.update(
            data_folder_in=str(folder / "queue"),
            data_folder_out=str(folder / "queue"),
            processed_folder=str(folder / "processed"),
            control_folder=str(folder / "control"),
            store_processed=False,
        )
    app.conf.update(
        broker_url=broker,
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=settings.JOB_TIME_LIMIT + 60,
        task_soft_time_limit=settings.JOB_TIME_LIMIT,
        task_default_queue="proxmox",
        task_queues=[Queue("proxmox"), Queue(POOL_QUEUE)],
        task_routes={
            "containers.refill_pools": {"queue": POOL_QUEUE},
            "containers.*": {"queue": "proxmox"},
        },
        task_always_eager=settings.CELERY_TASK_ALWAYS_EAGER,
        timezone="UTC",
        beat_schedule={
            "reconcile-jobs": {
                "task": "containers.reconcile_jobs",
                "schedule": float(settings.RECONCILE_INTERVAL),
            },
            "reconcile-sites": {
                "task": "containers.reconcile_sites",
                "schedule": float(settings.RECONCILE_SITES_INTERVAL),
            },
            "probe-nodes": {
                "task": "containers.probe_nodes",
                "schedule": float(settings.NODE_PROBE_INTERVAL),
            },
            # Daily: container expiry and the retention sweeps (job logs, audit, tokens).
            "sweep-containers": {"task": "containers.sweep_containers", "schedule": 86400.0},
            "poll-metrics": {
                "task": "containers.poll_metrics",
                "schedule": float(settings.METRICS_POLL_INTERVAL),
                # A poll that waited a whole interval in the queue is worth nothing.
                "options": {"expires": float(settings.METRICS_POLL_INTERVAL)},
            },
            "sweep-deployments": {"task": "containers.sweep_deployments", "schedule": 86400.0},
            # Daily: the Wazuh agents of containers that are gone (containers/wazuh/sweep.py).
            "sweep-wazuh-agents": {"task": "containers.sweep_wazuh_agents", "schedule": 86400.0},
            "refill-pools": {
                "task": "containers.refill_pools",
                "schedule": float(settings.POOL_REFILL_INTERVAL),
                "options": {"queue": POOL_QUEUE, "expires": float(settings.POOL_REFILL_INTERVAL)},
            },
            "poll-wazuh": {
                "task": "containers.poll_wazuh",
                "schedule": float(settings.WAZUH_POLL_INTERVAL),
                "options": {"expires": float(settings.WAZUH_POLL_INTERVAL)},
            },
        },
        worker_hijack_root_logger=False,
    )


@app.on_configure.connect
def _on_configure(sender: Celery, **kwargs: object) -> None:
    configure(sender)


app.autodiscover_tasks()


def send_by_name(name: str, *, args: tuple[object, ...], queue: str) -> None:
    """Queue a task by its name: how a lower layer asks for work a higher one does.

    The configuration is read first, as `Task.apply_async` does: `send_task` builds the
    broker side before it reads it, and a configuration loaded after that makes
    `_on_configure` recurse.
    """
    app.conf.task_default_queue  # noqa: B018 - loads the configuration (see above)
    app.send_task(name, args=args, queue=queue)


def gateway_queue(site_slug: str) -> str:
    """The queue a site's gateway worker consumes (it runs on the gateway host)."""
    return f"gateway.{site_slug}"


def backoff(attempt: int, *, base: float, cap: float) -> float:
    """The one retry schedule of every task: `base` seconds before the first retry, then
    twice as long each time, never more than `cap`. `attempt` counts from 1."""
    return float(min(base * 2 ** max(attempt - 1, 0), cap))
