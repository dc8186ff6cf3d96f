"""templates list, nodes list."""

from __future__ import annotations

from typing import Any

import typer

from ..output import listing, text, when
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
    if not total:
        return "-"
    return f"{(used or 0) / GIB:.0f}/{total / GIB:.0f} GiB"


@nodes.command("list")
def nodes_list(json_: JsonOpt = False) -> None:
    """The hypervisors, their state and capacity (staff only)."""
    rows = list(SESSION.api().pages("nodes/"))
    listing(
        json_,
        rows,
        [
            ("NAME", "name"),
            ("SITE", "site"),
            ("SLOT", "slot"),
            ("STATE", "state"),
            ("CPUS", "max_cpu"),
            ("LOAD", lambda n: text(n.get("cpu_load"))),
            ("MEMORY", lambda n: _gib(n.get("used_memory"), n.get("max_memory"))),
            ("DISK", lambda n: _gib(n.get("used_disk"), n.get("max_disk"))),
            ("UPDATED", lambda n: when(n.get("capacity_updated_at"))),
        ],
        empty="no nodes",
    )
