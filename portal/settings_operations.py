"""Settings of the portal's operations, one environment variable each (defaults in
`.env.example`): health and Prometheus, metrics and noisy-neighbour alerts, notification
delivery, container expiry, the retention sweeps and Wazuh. Imported by portal/settings.py,
after it has read `.env`.
"""

from __future__ import annotations

import environ as _environ

_env = _environ.Env()

# --- health and Prometheus (containers/monitoring/) -------------------------------------
# /readyz: how long the broker ping may take, and how long a change may wait for a site's
# gateway before the site counts as stale (not ready).
READYZ_BROKER_TIMEOUT = _env.float("READYZ_BROKER_TIMEOUT", default=1.0)
READYZ_GATEWAY_STALE_AFTER = _env.float("READYZ_GATEWAY_STALE_AFTER", default=300.0)
# /metrics answers a request bearing this token, or one from an allowed network (CIDRs).
METRICS_TOKEN = _env.str("METRICS_TOKEN", default="")
METRICS_ALLOW = _env.list("METRICS_ALLOW", default=["127.0.0.1/32", "::1/128"])
# Finished jobs are counted (and their durations bucketed) over this sliding window.
METRICS_JOB_WINDOW = _env.int("METRICS_JOB_WINDOW", default=3600)
# Per-container gauges (portal_container_*: CPU, memory, disk, network and disk rates from
# the latest sample): nine series per container, so off unless asked for (cardinality).
METRICS_PER_CONTAINER = _env.bool("METRICS_PER_CONTAINER", default=False)

# Metrics (containers/metrics/): one resources call per site every METRICS_POLL_INTERVAL
# seconds; RRD history and live swap are cached this long per container and range.
METRICS_POLL_INTERVAL = _env.float("METRICS_POLL_INTERVAL", default=30.0)
METRICS_HISTORY_CACHE_SECONDS = _env.int("METRICS_HISTORY_CACHE_SECONDS", default=20)
# Noisy-neighbour alerts (containers/metrics/alerts.py), checked after each poll: memory
# used / limit at or above ALERT_MEMORY_FRACTION with PSI memory "some" avg10 (%, from
# status/current, read only for the containers near their limit) at or above
# ALERT_MEMORY_PRESSURE; or CPU (a fraction of the CT's cores) at or above
# ALERT_CPU_FRACTION. Either must hold ALERT_FOR_MINUTES before it is raised.
ALERT_MEMORY_FRACTION = _env.float("ALERT_MEMORY_FRACTION", default=0.9)
ALERT_MEMORY_PRESSURE = _env.float("ALERT_MEMORY_PRESSURE", default=10.0)
ALERT_CPU_FRACTION = _env.float("ALERT_CPU_FRACTION", default=0.95)
ALERT_FOR_MINUTES = _env.float("ALERT_FOR_MINUTES", default=5.0)

# Wazuh (containers/wazuh/; docs/wazuh.md; the managers themselves are set per site): each
# site's agents are listed once every WAZUH_POLL_INTERVAL seconds (one paged GET /agents);
# the indexer's alerts a page or the API shows are cached WAZUH_ALERTS_CACHE_SECONDS; the
# admin's page of a manager shows the site's alerts of this level or higher.
WAZUH_POLL_INTERVAL = _env.float("WAZUH_POLL_INTERVAL", default=60.0)
WAZUH_ALERTS_CACHE_SECONDS = _env.int("WAZUH_ALERTS_CACHE_SECONDS", default=60)
WAZUH_TOP_ALERTS_MIN_LEVEL = _env.int("WAZUH_TOP_ALERTS_MIN_LEVEL", default=10)
WAZUH_TIMEOUT = _env.float("WAZUH_TIMEOUT", default=10.0)
WAZUH_PAGE_LIMIT = _env.int("WAZUH_PAGE_LIMIT", default=500)
# Days the daily sweep's reports (WazuhSweepRun) are kept.
WAZUH_SWEEP_KEEP_DAYS = _env.int("WAZUH_SWEEP_KEEP_DAYS", default=90)
# How long a create's enrolment step waits for a new agent to receive its key.
WAZUH_ENROL_WAIT_SECONDS = _env.float("WAZUH_ENROL_WAIT_SECONDS", default=60.0)

# Job logs (JobLogEntry of finished jobs) and API tokens that expired or were revoked this
# many days ago go in the daily sweep (containers.retention); 0 keeps everything.
JOB_LOG_RETENTION_DAYS = _env.int("JOB_LOG_RETENTION_DAYS", default=90)
API_TOKEN_RETENTION_DAYS = _env.int("API_TOKEN_RETENTION_DAYS", default=30)

# --- notification delivery (auth/notifications.py) and container expiry
# A webhook URL is https, or http to one of these hosts (e.g. a receiver on the same host).
NOTIFY_WEBHOOK_HTTP_HOSTS = _env.list("NOTIFY_WEBHOOK_HTTP_HOSTS", default=[])
NOTIFY_WEBHOOK_TIMEOUT = _env.float("NOTIFY_WEBHOOK_TIMEOUT", default=5.0)
# Deliveries that fail are retried with backoff (portal.celery.backoff) this many times.
NOTIFY_MAX_RETRIES = _env.int("NOTIFY_MAX_RETRIES", default=5)
NOTIFY_RETRY_BACKOFF = _env.float("NOTIFY_RETRY_BACKOFF", default=30.0)
NOTIFY_RETRY_BACKOFF_MAX = _env.float("NOTIFY_RETRY_BACKOFF_MAX", default=1800.0)


def _days(name: str) -> int | None:
    raw = _env.str(name, default="").strip()
    return int(raw) if raw else None


# A new container expires after this many days unless its template or site says otherwise;
# empty: never (the default).
CONTAINER_DEFAULT_TTL_DAYS = _days("CONTAINER_DEFAULT_TTL_DAYS")
# Its owner is warned this many days before, once per expiry; at expiry it is stopped, and
# deleted this many days later unless extended. An owner may extend it to at most
# CONTAINER_EXTEND_MAX_DAYS from now (staff may go further).
CONTAINER_EXPIRY_WARN_DAYS = _env.int("CONTAINER_EXPIRY_WARN_DAYS", default=7)
CONTAINER_EXPIRY_GRACE_DAYS = _env.int("CONTAINER_EXPIRY_GRACE_DAYS", default=14)
CONTAINER_EXTEND_MAX_DAYS = _env.int("CONTAINER_EXTEND_MAX_DAYS", default=90)

# --- the warm pool (containers/pool/, docs/pool.md); each pool's target is set in the admin
# Seconds between refill passes (celery beat, queue `pool`); a claim also asks for one.
POOL_REFILL_INTERVAL = _env.float("POOL_REFILL_INTERVAL", default=60.0)
# A node takes no new member when its disk is used above this fraction, or when the memory
# of its live containers and members would pass this multiple of its memory.
POOL_NODE_MAX_DISK_USED = _env.float("POOL_NODE_MAX_DISK_USED", default=0.9)
POOL_NODE_MAX_MEMORY_COMMIT = _env.float("POOL_NODE_MAX_MEMORY_COMMIT", default=2.0)
