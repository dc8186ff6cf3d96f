"""A node's capacity and load, and what its containers commit of it.

Where the figures come from:
- the beat probe (containers/health.py) already calls GET /nodes/{node}/status once per
  node per interval; when the node answers, `record_probe` keeps the figures of that
  answer in the same UPDATE that records the look (`probed_at`): no extra call, no audit
  entry, one statement per node;
- the admin's "read the capacity" action (networking/site_services.py) reads the same
  figures with `status_figures`, and audits it.

An UPDATE never replaces figures read later than its own (a slow probe that lost a race
with the admin's action leaves the newer ones): the figures' columns are conditional on
`capacity_updated_at`, while `probed_at` is always written.

For the pages: `nodes_with_commitments` annotates any Node queryset with its live
containers (count, running, cores, memory) in the same query, so a list of nodes costs
one query however many nodes and containers there are; `node_load` and `site_load` give
the figures one shape (`Load`) for the admin to show.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import (
    Case,
    Count,
    F,
    IntegerField,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce

from networking.models import Node, Site

from .models import LIVE, Container, ContainerStatus

MIB = 1 << 20


# -- reading a node status ---------------------------------------------------------------------
def _number(value: Any, kind: type[int] | type[float]) -> int | float | None:
    """A figure of the answer as `kind`; None if it is missing, not a number or negative."""
    try:
        number = kind(float(value))
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) and number >= 0 else None


def status_figures(status: Mapping[str, Any]) -> dict[str, int | float | None]:
    """The node's columns from a GET /nodes/{node}/status answer.

    `cpu` is a fraction of all its CPUs; `loadavg` is /proc/loadavg's three figures as
    strings (`["0.52", "0.48", "0.40"]`)."""
    memory = status.get("memory") or {}
    rootfs = status.get("rootfs") or {}
    cpuinfo = status.get("cpuinfo") or {}
    loadavg = status.get("loadavg")
    if not isinstance(loadavg, Sequence) or isinstance(loadavg, str) or len(loadavg) != 3:
        loadavg = (None, None, None)
    one, five, fifteen = (_number(v, float) for v in loadavg)
    return {
        "max_cpu": _number(cpuinfo.get("cpus"), int),
        "cpu_load": _number(status.get("cpu"), float),
        "load_1": one,
        "load_5": five,
        "load_15": fifteen,
        "max_memory": _number(memory.get("total"), int),
        "used_memory": _number(memory.get("used"), int),
        "max_disk": _number(rootfs.get("total"), int),
        "used_disk": _number(rootfs.get("used"), int),
    }


def record_probe(*, node: Node, at: datetime, status: Mapping[str, Any] | None) -> None:
    """Record that the probe looked at `at` and, if the node gave its status, its figures.

    One UPDATE; the figures only where none newer are stored (see the module's docstring).
    """
    values: dict[str, Any] = {"probed_at": at}
    if status is not None:
        # Nothing read later is stored (else the figures stay; the look is still recorded).
        unread_since = Q(capacity_updated_at__isnull=True) | Q(capacity_updated_at__lte=at)
        figures = {**status_figures(status), "capacity_updated_at": at}
        for name, value in figures.items():
            field = Node._meta.get_field(name)
            values[name] = Case(
                When(unread_since, then=Value(value, output_field=field)),  # type: ignore[arg-type]
                default=F(name),
            )
    Node.objects.filter(pk=node.pk).update(**values)


# -- what the pages show -----------------------------------------------------------------------
def nodes_with_commitments(queryset: QuerySet[Node] | None = None) -> QuerySet[Node]:
    """Nodes annotated with their live containers, in the same query: `containers_live`,
    `containers_running`, `committed_cores` and `committed_memory_mib` (0 when none)."""
    qs = Node.objects.all() if queryset is None else queryset
    live = Container.objects.filter(LIVE, node=OuterRef("pk")).order_by().values("node")

    def total(aggregate: Any) -> Coalesce:
        column = Subquery(live.annotate(v=aggregate).values("v"), output_field=IntegerField())
        return Coalesce(column, 0)

    running = Q(status=ContainerStatus.RUNNING)
    return qs.select_related("site").annotate(
        containers_live=total(Count("pk")),
        containers_running=total(Count("pk", filter=running)),
        committed_cores=total(Sum("cores")),
        committed_memory_mib=total(Sum("memory_mib")),
    )


@dataclass(frozen=True)
class Load:
    """A node's capacity, load and commitments as last read (a site's: its nodes' sums)."""

    cpus: int | None
    cpu: float | None  # a fraction of all `cpus`
    load: tuple[float | None, float | None, float | None]
    memory_used: int | None
    memory_total: int | None
    disk_used: int | None
    disk_total: int | None
    containers: int
    running: int
    committed_cores: int
    committed_memory: int  # bytes
    read_at: datetime | None  # when the figures were read (a site: its oldest node's)

    @property
    def cores_committed(self) -> float | None:
        """The live containers' cores over the CPUs: past 1, overcommitted."""
        return self.committed_cores / self.cpus if self.cpus else None

    @property
    def memory_committed(self) -> float | None:
        """The live containers' memory over the node's: past 1, overcommitted."""
        return self.committed_memory / self.memory_total if self.memory_total else None


def node_load(node: Node) -> Load:
    """The figures of a node from `nodes_with_commitments` (a plain node: none committed)."""
    return Load(
        cpus=node.max_cpu,
        cpu=node.cpu_load,
        load=(node.load_1, node.load_5, node.load_15),
        memory_used=node.used_memory,
        memory_total=node.max_memory,
        disk_used=node.used_disk,
        disk_total=node.max_disk,
        containers=getattr(node, "containers_live", 0),
        running=getattr(node, "containers_running", 0),
        committed_cores=getattr(node, "committed_cores", 0),
        committed_memory=getattr(node, "committed_memory_mib", 0) * MIB,
        read_at=node.capacity_updated_at,
    )


def site_load(site: Site) -> Load:
    """The site's nodes summed (the CPU use weighted by their CPUs), in two queries."""
    nodes = Node.objects.filter(site=site).aggregate(
        cpus=Sum("max_cpu"),
        busy=Sum(F("cpu_load") * F("max_cpu")),
        load_1=Sum("load_1"),
        load_5=Sum("load_5"),
        load_15=Sum("load_15"),
        memory_used=Sum("used_memory"),
        memory_total=Sum("max_memory"),
        disk_used=Sum("used_disk"),
        disk_total=Sum("max_disk"),
        read_at=Min("capacity_updated_at"),
    )
    live = Container.objects.filter(LIVE, site=site).aggregate(
        containers=Count("pk"),
        running=Count("pk", filter=Q(status=ContainerStatus.RUNNING)),
        cores=Coalesce(Sum("cores"), 0),
        memory_mib=Coalesce(Sum("memory_mib"), 0),
    )
    cpus, busy = nodes["cpus"], nodes["busy"]
    return Load(
        cpus=cpus,
        cpu=busy / cpus if cpus and busy is not None else None,
        load=(nodes["load_1"], nodes["load_5"], nodes["load_15"]),
        memory_used=nodes["memory_used"],
        memory_total=nodes["memory_total"],
        disk_used=nodes["disk_used"],
        disk_total=nodes["disk_total"],
        containers=live["containers"],
        running=live["running"],
        committed_cores=live["cores"],
        committed_memory=live["memory_mib"] * MIB,
        read_at=nodes["read_at"],
    )
