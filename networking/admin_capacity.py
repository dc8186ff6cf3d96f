"""A node's capacity and load in the admin, at a glance: its list and its page show the
figures the beat probe keeps (containers/node_load.py), in human units, with what its
live containers commit and how old the figures are. The site's page shows its nodes' sums.

The texts are pure functions of a `Load` (tests/unit/networking/test_node_capacity.py)."""

from __future__ import annotations

from datetime import datetime

from django.contrib import admin
from django.utils import timezone

from containers.node_load import Load, node_load, site_load
from portal import units

from .models import Node, NodeState, Site


# -- the texts ---------------------------------------------------------------------------------
def cpu_text(load: Load) -> str:
    """`23.4 % of 16 CPUs`."""
    if load.cpus is None:
        return units.DASH
    return f"{units.percent(load.cpu)} of {load.cpus} CPUs"


def containers_text(load: Load) -> str:
    """`5 (3 running)`."""
    return f"{load.containers} ({load.running} running)"


def committed_cores_text(load: Load) -> str:
    """The live containers' cores over the CPUs: `14 / 16 cores (0.88 times)`."""
    if load.cpus is None:
        return f"{load.committed_cores} cores"
    ratio = units.ratio(load.cores_committed)
    return f"{load.committed_cores} / {load.cpus} cores ({ratio})"


def committed_memory_text(load: Load) -> str:
    """The live containers' memory over the node's: `20.0 / 62.8 GiB (0.32 times)`."""
    if load.memory_total is None:
        return units.iec_bytes(load.committed_memory)
    shown = units.used_of(load.committed_memory, load.memory_total)
    return f"{shown} ({units.ratio(load.memory_committed)})"


def state_text(node: Node, now: datetime) -> str:
    """The node's state; an offline one says for how long and why."""
    if node.state == NodeState.OFFLINE and node.offline_since is not None:
        since = units.span(node.offline_since, now)
        return f"{node.get_state_display()} for {since}: {node.offline_reason}"
    return str(node.get_state_display())


def summary_text(load: Load, now: datetime) -> str:
    """Every figure on one line (a site's: its nodes summed)."""
    return (
        f"CPU {cpu_text(load)}, load {units.loads(*load.load)}; "
        f"memory {units.used_of(load.memory_used, load.memory_total)}; "
        f"disk {units.used_of(load.disk_used, load.disk_total)}; "
        f"{containers_text(load)} containers committing {committed_cores_text(load)} "
        f"and {committed_memory_text(load)} of memory; read {units.ago(load.read_at, now)}"
    )


# -- the columns -------------------------------------------------------------------------------
class NodeCapacityColumns:
    """The node admin's figures, as list columns and read-only fields of its page. Its
    queryset must be `nodes_with_commitments` (one query for the whole list)."""

    CAPACITY = (
        "cpu_use",
        "load_average",
        "memory_use",
        "disk_use",
        "container_count",
        "committed_cpu",
        "committed_memory",
        "figures_age",
    )

    @admin.display(description="State", ordering="state")
    def state_shown(self, node: Node) -> str:
        return state_text(node, timezone.now())

    @admin.display(description="CPU", ordering="cpu_load")
    def cpu_use(self, node: Node) -> str:
        return cpu_text(node_load(node))

    @admin.display(description="Load 1 / 5 / 15 min", ordering="load_1")
    def load_average(self, node: Node) -> str:
        return units.loads(node.load_1, node.load_5, node.load_15)

    @admin.display(description="Memory", ordering="used_memory")
    def memory_use(self, node: Node) -> str:
        return units.used_of(node.used_memory, node.max_memory)

    @admin.display(description="Disk (root)", ordering="used_disk")
    def disk_use(self, node: Node) -> str:
        return units.used_of(node.used_disk, node.max_disk)

    @admin.display(description="Containers", ordering="containers_live")
    def container_count(self, node: Node) -> str:
        return containers_text(node_load(node))

    @admin.display(description="Committed CPU", ordering="committed_cores")
    def committed_cpu(self, node: Node) -> str:
        return committed_cores_text(node_load(node))

    @admin.display(description="Committed memory", ordering="committed_memory_mib")
    def committed_memory(self, node: Node) -> str:
        return committed_memory_text(node_load(node))

    @admin.display(description="Figures read", ordering="capacity_updated_at")
    def figures_age(self, node: Node) -> str:
        return units.ago(node.capacity_updated_at, timezone.now())


@admin.display(description="Capacity and load")
def site_capacity(site: Site) -> str:
    """The site's nodes summed, for its page (two queries)."""
    if site.pk is None:
        return units.DASH
    return summary_text(site_load(site), timezone.now())
