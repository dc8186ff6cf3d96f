"""/metrics: Prometheus gauges computed from the database at scrape time.

The web, the proxmox workers and the gateway workers are separate processes (often on
separate hosts), so counters kept in one process's memory would show only that
process's share. Every figure here is read from the database instead, by a Collector
that runs a fixed number of queries per scrape (seven; eight with METRICS_PER_CONTAINER),
whatever the number of rows.

The warm pool (containers/pool/): each pool's size, target, hits, misses and the time its
last member took to make, from one more query (`pool_gauges`).

Per-container gauges (CPU, memory, disk, network and disk rates from each container's
latest sample, labelled site, node, vmid and hostname) are off unless METRICS_PER_CONTAINER:
they are a series per container and figure, which a large cluster may not want to store.

Jobs are counted over a sliding window (METRICS_JOB_WINDOW seconds of `finished_at`),
not as counters since the beginning: job rows may be pruned, and a counter that shrinks
reads to Prometheus as a reset. So `portal_jobs_finished` is a gauge, and
`portal_job_duration_seconds` is a gauge histogram (exposed as a histogram in the text
format): query its buckets with `histogram_quantile` directly, without `rate()`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
from django.utils import timezone
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from networking.models import NodeState

from ..metrics.models import OPEN_ALERT, AlertKind, ContainerAlert
from ..models import (
    ACTIVE_JOB_STATUSES,
    FINAL_JOB_STATUSES,
    Container,
    ContainerSample,
    ContainerStatus,
    Job,
)
from ..pool.selectors import pools_with_figures
from .selectors import gateway_rows, node_rows

# Upper bounds (seconds) of the job duration buckets: a start takes seconds, a create
# from a big template minutes, a deploy up to the job time limit.
JOB_DURATION_BUCKETS = (1, 2, 5, 10, 30, 60, 120, 300, 600, 1800)


def _timestamp(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


class PortalCollector(Collector):
    """Collects every portal metric from the database when Prometheus scrapes."""

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        yield from self._containers()
        yield from self._nodes()
        yield from self._gateways()
        yield from self._active_jobs()
        yield from self._finished_jobs(now)
        yield from self._alerts()
        yield from pool_gauges()
        if settings.METRICS_PER_CONTAINER:
            yield from per_container_gauges()

    def _containers(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "portal_containers",
            "Containers by site, node and status (deleted ones left out).",
            labels=["site", "node", "status"],
        )
        rows = (
            Container.objects.exclude(status=ContainerStatus.DELETED)
            .values("site__slug", "node__name", "status")
            .annotate(n=Count("pk"))
            .order_by("site__slug", "node__name", "status")
        )
        for row in rows:
            gauge.add_metric([row["site__slug"], row["node__name"], row["status"]], row["n"])
        yield gauge

    def _alerts(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "portal_alerts_open",
            "Noisy-neighbour alerts raised and not cleared, by kind (every kind listed).",
            labels=["kind"],
        )
        counts = dict(
            ContainerAlert.objects.filter(OPEN_ALERT)
            .values_list("kind")
            .annotate(n=Count("pk"))
            .order_by()
        )
        for kind in AlertKind.values:
            gauge.add_metric([kind], counts.get(kind, 0))
        yield gauge

    def _nodes(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "portal_node_up",
            "1 unless the node probe found the node offline (maintenance counts as up).",
            labels=["site", "node"],
        )
        state = GaugeMetricFamily(
            "portal_node_state",
            "1 for the node's current state (active, maintenance, offline), 0 for the others.",
            labels=["site", "node", "state"],
        )
        probed = GaugeMetricFamily(
            "portal_node_last_probe_timestamp_seconds",
            "When the node probe last recorded the node (Unix time).",
            labels=["site", "node"],
        )
        for row in node_rows():
            labels = [row.site, row.name]
            up.add_metric(labels, 0 if row.state == NodeState.OFFLINE else 1)
            for value in NodeState.values:
                state.add_metric([*labels, value], 1 if row.state == value else 0)
            if row.probed_at is not None:
                probed.add_metric(labels, row.probed_at.timestamp())
        yield from (up, state, probed)

    def _gateways(self) -> Iterator[Metric]:
        labels = ["site"]
        success = GaugeMetricFamily(
            "portal_gateway_last_success_timestamp_seconds",
            "When the site's gateway last applied its files successfully (Unix time).",
            labels=labels,
        )
        duration = GaugeMetricFamily(
            "portal_gateway_last_apply_duration_seconds",
            "How long the site's latest gateway apply took, whatever its outcome.",
            labels=labels,
        )
        failed = GaugeMetricFamily(
            "portal_gateway_last_apply_failed",
            "1 if the site's latest gateway apply failed.",
            labels=labels,
        )
        pending = GaugeMetricFamily(
            "portal_gateway_pending_changes",
            "Changes requested of the site's gateway and not yet applied.",
            labels=labels,
        )
        for row in gateway_rows():
            site = [row.site]
            pending.add_metric(site, row.pending)
            last_success = _timestamp(row.last_success_at)
            if last_success is not None:
                success.add_metric(site, last_success)
            if row.last_status is not None:
                duration.add_metric(site, (row.last_duration_ms or 0) / 1000)
                failed.add_metric(site, 1 if row.last_status == "failed" else 0)
        yield from (success, duration, failed, pending)

    def _active_jobs(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "portal_jobs_active",
            "Jobs queued or running, by kind and status.",
            labels=["kind", "status"],
        )
        rows = (
            Job.objects.filter(status__in=ACTIVE_JOB_STATUSES)
            .values("kind", "status")
            .annotate(n=Count("pk"))
            .order_by("kind", "status")
        )
        for row in rows:
            gauge.add_metric([row["kind"], row["status"]], row["n"])
        yield gauge

    def _finished_jobs(self, now: datetime) -> Iterator[Metric]:
        window = int(settings.METRICS_JOB_WINDOW)
        finished = GaugeMetricFamily(
            "portal_jobs_finished",
            f"Jobs finished in the last {window} s, by kind and outcome "
            "(succeeded, failed, cancelled).",
            labels=["kind", "outcome"],
        )
        histogram = GaugeHistogramMetricFamily(
            "portal_job_duration_seconds",
            f"Run time (start to finish) of the jobs finished in the last {window} s, by kind.",
            labels=["kind"],
        )
        per_kind: dict[str, dict[str, Any]] = defaultdict(
            lambda: {"buckets": [0] * len(JOB_DURATION_BUCKETS), "count": 0, "sum": 0.0}
        )
        for row in _finished_job_rows(now - timedelta(seconds=window)):
            finished.add_metric([row["kind"], row["status"]], row["n"])
            kind = per_kind[row["kind"]]
            kind["count"] += row["timed"]
            kind["sum"] += row["total"].total_seconds() if row["total"] else 0.0
            for i in range(len(JOB_DURATION_BUCKETS)):
                kind["buckets"][i] += row[f"le{i}"]
        for name, kind in sorted(per_kind.items()):
            buckets = [
                (str(float(bound)), float(n))
                for bound, n in zip(JOB_DURATION_BUCKETS, kind["buckets"], strict=True)
            ]
            buckets.append(("+Inf", float(kind["count"])))
            histogram.add_metric([name], buckets, gsum_value=kind["sum"])
        window_gauge = GaugeMetricFamily(
            "portal_jobs_window_seconds",
            "The window portal_jobs_finished and portal_job_duration_seconds cover.",
            value=window,
        )
        yield from (finished, histogram, window_gauge)


def _finished_job_rows(since: datetime) -> list[dict[str, Any]]:
    """Per (kind, final status): how many, how many ran, their total and bucketed run time."""
    run_time = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
    buckets = {
        f"le{i}": Count("pk", filter=Q(run_time__lte=timedelta(seconds=bound)))
        for i, bound in enumerate(JOB_DURATION_BUCKETS)
    }
    return list(
        Job.objects.filter(status__in=FINAL_JOB_STATUSES, finished_at__gte=since)
        .alias(run_time=run_time)
        .values("kind", "status")
        .annotate(
            n=Count("pk"),
            timed=Count("pk", filter=Q(started_at__isnull=False)),
            total=Sum("run_time"),
            **buckets,
        )
        .order_by("kind", "status")
    )


# -- per container (METRICS_PER_CONTAINER) ---------------------------------------------------
# (metric, help, ContainerSample field): gauges from each live container's latest sample.
PER_CONTAINER = (
    ("portal_container_cpu_ratio", "CPU used, as a fraction of the container's cores.", "cpu"),
    ("portal_container_memory_bytes", "Memory used.", "mem"),
    ("portal_container_memory_limit_bytes", "The container's memory limit.", "maxmem"),
    ("portal_container_disk_bytes", "Root disk used.", "disk"),
    (
        "portal_container_network_receive_bytes_per_second",
        "Network bytes received per second, between the last two polls.",
        "netin_rate",
    ),
    (
        "portal_container_network_transmit_bytes_per_second",
        "Network bytes sent per second, between the last two polls.",
        "netout_rate",
    ),
    (
        "portal_container_disk_read_bytes_per_second",
        "Disk bytes read per second, between the last two polls.",
        "diskread_rate",
    ),
    (
        "portal_container_disk_write_bytes_per_second",
        "Disk bytes written per second, between the last two polls.",
        "diskwrite_rate",
    ),
)
CONTAINER_LABELS = ["site", "node", "vmid", "hostname"]


POOL_GAUGES = (
    ("portal_pool_size", "Ready (stopped, unclaimed) members of each warm pool.", "size"),
    ("portal_pool_target", "Each warm pool's target size (0: off).", "target"),
    (
        "portal_pool_hits",
        "Creates that took a member of the pool (since the pool was made).",
        "hits",
    ),
    ("portal_pool_misses", "Creates that found the pool empty and made a CT.", "misses"),
    (
        "portal_pool_refill_seconds",
        "Seconds the pool's last member took to make (create task included).",
        "last_build_seconds",
    ),
)


def pool_gauges() -> list[Metric]:
    """The warm pools' figures, labelled site, template and node (one query)."""
    labels = ["site", "template", "node"]
    gauges = [
        (GaugeMetricFamily(name, doc, labels=labels), attr) for name, doc, attr in POOL_GAUGES
    ]
    for pool in pools_with_figures():
        key = [pool.site.slug, pool.template.name, pool.node.name]
        for gauge, attr in gauges:
            value = getattr(pool, attr)
            if value is not None:
                gauge.add_metric(key, float(value))
    return [gauge for gauge, _ in gauges]


def per_container_gauges() -> list[Metric]:
    """One series per live container and figure, from its latest metrics sample (one
    query). A container without a sample has none; a rate that cannot be known yet (a
    first sample, a restart) is left out rather than shown as 0. The sample's time is a
    series too, so that figures a poll no longer refreshes (a node down) can be told."""
    gauges = [
        GaugeMetricFamily(name, doc, labels=CONTAINER_LABELS) for name, doc, _ in PER_CONTAINER
    ]
    sampled = GaugeMetricFamily(
        "portal_container_sample_timestamp_seconds",
        "When the metrics poll last sampled the container (Unix time).",
        labels=CONTAINER_LABELS,
    )
    figures = [field for _, _, field in PER_CONTAINER]
    rows = (
        ContainerSample.objects.exclude(container__status=ContainerStatus.DELETED)
        .order_by("container__site__slug", "container__vmid")
        .values_list(
            "container__site__slug",
            "container__node__name",
            "container__vmid",
            "container__hostname",
            "sampled_at",
            *figures,
        )
    )
    for site, node, vmid, hostname, sampled_at, *values in rows:
        labels = [site, node, str(vmid), hostname]
        sampled.add_metric(labels, sampled_at.timestamp())
        for gauge, value in zip(gauges, values, strict=True):
            if value is not None:
                gauge.add_metric(labels, float(value))
    return [*gauges, sampled]


def registry() -> CollectorRegistry:
    """A registry of the portal's collector alone (no per-process default metrics: the
    web workers are many and interchangeable, so their own figures would mislead)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(PortalCollector())
    return reg
