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
from typing import Any

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


def build_samples(
    entries: list[dict[str, Any]],
    containers: dict[int, int],
    previous: dict[int, Previous],
    now: datetime,
) -> list[ContainerSample]:
    """Samples for the containers (vmid -> pk) found in a resources list (no I/O).

    Guests of no live container (other tenants, QEMU VMs) are passed over, and so are
    those whose node is down: Proxmox lists them `unknown`, without figures, and the last
    sample stays as it was (its `sampled_at` says how old it is).
    """
    out: list[ContainerSample] = []
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
            ContainerSample(
                container_id=pk,
                sampled_at=now,
                pve_status=status[:16],
                cpu=_float(entry.get("cpu")),
                cpus=_float(entry.get("maxcpu")),
                mem=_int(entry.get("mem")),
                maxmem=_int(entry.get("maxmem")),
                disk=_int(entry.get("disk")),
                maxdisk=_int(entry.get("maxdisk")),
                uptime=uptime,
                netin=counters[0],
                netout=counters[1],
                diskread=counters[2],
                diskwrite=counters[3],
                netin_rate=per_second[0],
                netout_rate=per_second[1],
                diskread_rate=per_second[2],
                diskwrite_rate=per_second[3],
            )
        )
    return out


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
    if samples:
        ContainerSample.objects.bulk_create(
            samples,
            update_conflicts=True,
            unique_fields=["container"],
            update_fields=UPDATE_FIELDS,
        )
    return PollResult(
        site=site.slug,
        written=len(samples),
        api_seconds=fetched - started,
        write_seconds=time.perf_counter() - fetched,
    )


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
