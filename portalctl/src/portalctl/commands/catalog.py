"""templates list, nodes list."""

from __future__ import annotations

from typing import Any

import typer

from ..output import listing, when
from ..state import SESSION
from ._common import JsonOpt

GIB = 1024**3

templates = typer.Typer(no_args_is_help=True, help="The templates containers are made from.")
nodes = typer.Typer(no_args_is_help=True, help="The hypervisors (staff).")


# A callback keeps each a group of its own (`templates list`), as Typer would otherwise
# make a one-command app that command itself.
@templates.callback()
def _templates() -> None:
    """The templates containers are made from."""


@nodes.callback()
def _nodes() -> None:
    """The hypervisors (staff)."""


def _sizes(t: dict[str, Any], prefix: str) -> str:
    """cores / memory MiB / swap MiB / disk GiB, as `1c 1024M 512M 8G`."""
    return (
        f"{t.get(f'{prefix}_cores')}c {t.get(f'{prefix}_memory_mib')}M "
        f"{t.get(f'{prefix}_swap_mib')}M {t.get(f'{prefix}_disk_gib')}G"
    )


@templates.command("list")
def templates_list(json_: JsonOpt = False) -> None:
    """The templates you can create containers from, with their default and largest sizes."""
    rows = list(SESSION.api().pages("templates/"))
    listing(
        json_,
        rows,
        [
            ("NAME", "name"),
            ("DESCRIPTION", "display_name"),
            ("SITE", "site"),
            ("OS", "os_type"),
            ("DEFAULT", lambda t: _sizes(t, "default")),
            ("MAXIMUM", lambda t: _sizes(t, "max")),
            ("ENABLED", "enabled"),
        ],
        empty="no templates",
    )


def _gib(used: Any, total: Any) -> str:
    """`12.3/62.8 GiB`."""
    if not total:
        return "-"
    return f"{(used or 0) / GIB:.1f}/{total / GIB:.1f} GiB"


def cpu_use(node: dict[str, Any]) -> str:
    """The CPU use as a percentage of the node's CPUs: `23.4% of 16`."""
    if node.get("cpu_load") is None or not node.get("max_cpu"):
        return "-"
    return f"{node['cpu_load'] * 100:.1f}% of {node['max_cpu']}"


def load_average(node: dict[str, Any]) -> str:
    """The 1, 5 and 15 minute load averages as the kernel prints them: `3.74 3.37 3.00`."""
    values = [node.get(f"load_{m}") for m in (1, 5, 15)]
    if all(v is None for v in values):
        return "-"
    return " ".join("-" if v is None else f"{v:.2f}" for v in values)


@nodes.command("list")
def nodes_list(json_: JsonOpt = False) -> None:
    """The hypervisors, their state, capacity and load (staff only)."""
    rows = list(SESSION.api().pages("nodes/"))
    listing(
        json_,
        rows,
        [
            ("NAME", "name"),
            ("SITE", "site"),
            ("SLOT", "slot"),
            ("STATE", "state"),
            ("CPU", cpu_use),
            ("LOAD 1/5/15", load_average),
            ("MEMORY", lambda n: _gib(n.get("used_memory"), n.get("max_memory"))),
            ("DISK", lambda n: _gib(n.get("used_disk"), n.get("max_disk"))),
            ("UPDATED", lambda n: when(n.get("capacity_updated_at"))),
        ],
        empty="no nodes",
    )
