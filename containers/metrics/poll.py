"""The metrics poll: ONE `GET /cluster/resources?type=vm` per site, ONE bulk write.

Proxmox's resources list carries every guest's gauges and byte counters; the poll keeps
each live container's latest figures (`ContainerSample`) and turns the counters into
rates against the previous poll's raw counters. Nothing here calls Proxmox per container,
so a poll costs the same number of API calls at 10 containers or 10,000.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from django.db import connection, models
from django.db.models import Case, IntegerField, Value, When
from django.utils import timezone

from networking.models import NodeState, Site

from ..models import LIVE, Container
from ..proxmox import ProxmoxClient, ProxmoxError, ProxmoxUnavailable
from .models import ContainerSample

log = logging.getLogger(__name__)

COUNTERS = ("netin", "netout", "diskread", "diskwrite")
GAUGES = ("cpu", "cpus", "mem", "maxmem", "disk", "maxdisk", "uptime")
# Everything an upsert rewrites (all but the key).
UPDATE_FIELDS = [
    "sampled_at",
    "pve_status",
    *GAUGES,
    *COUNTERS,
    *(f"{c}_rate" for c in COUNTERS),
]


@dataclass(frozen=True)
class Previous:
    """What the last poll kept of one container: when, its uptime and raw counters."""

    sampled_at: datetime
    uptime: int
    counters: tuple[int, int, int, int]


@dataclass(frozen=True)
class PollResult:
    site: str
    written: int = 0
    api_seconds: float = 0.0
    write_seconds: float = 0.0
    error: str = ""


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _float(value: Any) -> float:
    try:
        return float(value or 0.0)
    except (TypeError, ValueError):
        return 0.0


def rates(
    counters: tuple[int, ...], uptime: int, now: datetime, previous: Previous | None
) -> list[float | None]:
    """Bytes/s per counter since `previous`; None where it cannot be known.

    Proxmox's counters count from the CT's start, so a smaller uptime or a counter that
    went down means a restart in between: the growth since is unknown, not negative.
    """
    if previous is None:
        return [None] * len(counters)
    elapsed = (now - previous.sampled_at).total_seconds()
    if elapsed <= 0 or uptime < previous.uptime:
        return [None] * len(counters)
    return [
        (new - old) / elapsed if new >= old else None
        for new, old in zip(counters, previous.counters, strict=True)
    ]


class SampleRow(NamedTuple):
    """One container's sample, in the table's column order (a model instance per row
    cost more than the write itself at 10,000 rows)."""

    container_id: int
    sampled_at: datetime
    pve_status: str
    cpu: float
    cpus: float
    mem: int
    maxmem: int
    disk: int
    maxdisk: int
    uptime: int
    netin: int
    netout: int
    diskread: int
    diskwrite: int
    netin_rate: float | None
    netout_rate: float | None
    diskread_rate: float | None
    diskwrite_rate: float | None


def build_samples(
    entries: list[dict[str, Any]],
    containers: dict[int, int],
    previous: dict[int, Previous],
    now: datetime,
) -> list[SampleRow]:
    """Samples for the containers (vmid -> pk) found in a resources list (no I/O).

    Guests of no live container (other tenants, QEMU VMs) are passed over, and so are
    those whose node is down: Proxmox lists them `unknown`, without figures, and the last
    sample stays as it was (its `sampled_at` says how old it is).
    """
    out: list[SampleRow] = []
    for entry in entries:
        if entry.get("type") != "lxc" or "cpu" not in entry:
            continue
        pk = containers.get(_int(entry.get("vmid")))
        if pk is None:
            continue
        status = str(entry.get("status", ""))
        counters = tuple(_int(entry.get(c)) for c in COUNTERS)
        uptime = _int(entry.get("uptime"))
        if status == "running":
            per_second = rates(counters, uptime, now, previous.get(pk))
        else:
            per_second = [0.0] * len(COUNTERS)  # stopped: no traffic, counters at zero
        out.append(
            SampleRow(
                pk,
                now,
                status[:16],
                _float(entry.get("cpu")),
                _float(entry.get("maxcpu")),
                _int(entry.get("mem")),
                _int(entry.get("maxmem")),
                _int(entry.get("disk")),
                _int(entry.get("maxdisk")),
                uptime,
                *counters,
                *per_second,
            )
        )
    return out


def _sql_type(name: str) -> str:
    field = ContainerSample._meta.get_field("container" if name == "container_id" else name)
    if isinstance(field, models.FloatField):
        return "double precision"
    if isinstance(field, models.DateTimeField):
        return "timestamptz"
    if isinstance(field, models.CharField):
        return "text"
    return "bigint"


def samples_write(rows: list[SampleRow]) -> None:
    """ONE upsert of every row: on PostgreSQL an INSERT ... SELECT FROM UNNEST(arrays) ON
    CONFLICT (one statement, 18 array parameters, whatever the count); elsewhere
    bulk_create(update_conflicts=True), which SQLite's variable limit splits in batches."""
    if not rows:
        return
    if connection.vendor != "postgresql":
        ContainerSample.objects.bulk_create(
            [ContainerSample(**row._asdict()) for row in rows],
            update_conflicts=True,
            unique_fields=["container"],
            update_fields=UPDATE_FIELDS,
        )
        return
    qn = connection.ops.quote_name
    columns = SampleRow._fields
    arrays = ", ".join(f"%s::{_sql_type(c)}[]" for c in columns)
    updates = ", ".join(f"{qn(c)} = EXCLUDED.{qn(c)}" for c in columns[1:])
    table, names = qn(ContainerSample._meta.db_table), ", ".join(qn(c) for c in columns)
    # Names come from the model and values are bound: nothing from outside is spliced in.
    head = f"INSERT INTO {table} ({names}) SELECT * FROM UNNEST({arrays})"  # noqa: S608
    sql = f"{head} ON CONFLICT ({qn('container_id')}) DO UPDATE SET {updates}"
    with connection.cursor() as cursor:
        cursor.execute(sql, [_pg_array(column) for column in zip(*rows, strict=True)])


def _pg_array(values: tuple[Any, ...]) -> str:
    """A column as one PostgreSQL array literal ('{1,2,NULL}'): adapting 180,000 values
    one by one cost the driver 0.35 s, joining them costs a few ms; the cast in the SQL
    types them."""
    first = next((v for v in values if v is not None), None)
    if isinstance(first, str):
        quoted = (
            "NULL" if v is None else '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
            for v in values
        )
        return "{" + ",".join(quoted) + "}"
    if isinstance(first, datetime):
        return "{" + ",".join("NULL" if v is None else f'"{v.isoformat()}"' for v in values) + "}"
    return "{" + ",".join("NULL" if v is None else repr(v) for v in values) + "}"


def site_resources(site: Site) -> list[dict[str, Any]]:
    """The cluster's guests from one node: active nodes first; another only if it is down."""
    nodes = list(
        site.nodes.annotate(
            down=Case(
                When(state=NodeState.ACTIVE, then=Value(0)),
                When(state=NodeState.MAINTENANCE, then=Value(1)),
                default=Value(2),
                output_field=IntegerField(),
            )
        ).order_by("down", "slot")
    )
    if not nodes:
        raise ProxmoxError(f"site {site.slug} has no node to ask")
    failure: ProxmoxUnavailable | None = None
    for node in nodes:
        try:
            return ProxmoxClient.for_node(node).cluster_resources("vm")
        except ProxmoxUnavailable as exc:
            log.info("metrics: %s did not answer (%s); asking another node", node.name, exc)
            failure = exc
    assert failure is not None
    raise failure


def _previous(site: Site) -> dict[int, Previous]:
    rows = ContainerSample.objects.filter(container__site=site).values_list(
        "container_id", "sampled_at", "uptime", *COUNTERS
    )
    return {row[0]: Previous(row[1], row[2], (row[3], row[4], row[5], row[6])) for row in rows}


def metrics_poll_site(*, site: Site, now: datetime | None = None) -> PollResult:
    """Poll one site: one API call, then one bulk upsert of every live container's sample."""
    started = time.perf_counter()
    entries = site_resources(site)
    fetched = time.perf_counter()
    now = now or timezone.now()
    containers = dict(Container.objects.filter(LIVE, site=site).values_list("vmid", "pk"))
    samples = build_samples(entries, containers, _previous(site), now)
    samples_write(samples)
    _check_alerts(samples, site, now)
    return PollResult(
        site=site.slug,
        written=len(samples),
        api_seconds=fetched - started,
        write_seconds=time.perf_counter() - fetched,
    )


def _check_alerts(samples: list[SampleRow], site: Site, now: datetime) -> None:
    """The noisy-neighbour check on this poll's samples; its failure never fails the poll."""
    from .alerts import evaluate_alerts

    try:
        report = evaluate_alerts(samples, site=site, now=now)
    except Exception:  # the samples are written; an alert can wait for the next poll
        log.exception("alerts: the check after the poll failed")
        return
    if report.raised or report.cleared:
        log.info("alerts: %d raised, %d cleared", report.raised, report.cleared)


def metrics_poll_all() -> list[PollResult]:
    """Every site once; a site that cannot be reached is reported and skipped."""
    results = []
    for site in Site.objects.order_by("slug"):
        try:
            results.append(metrics_poll_site(site=site))
        except (ProxmoxError, ProxmoxUnavailable) as exc:
            log.warning("metrics: site %s not polled: %s", site.slug, exc)
            results.append(PollResult(site=site.slug, error=str(exc)))
    return results
