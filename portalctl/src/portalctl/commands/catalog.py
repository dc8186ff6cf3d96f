"""templates list, nodes list."""

from __future__ import annotations

from typing import Any

from ..output import print_json, table, text, when
from ..state import SESSION
from ._common import JsonOpt

GIB = 1024**3


def _sizes(t: dict[str, Any], prefix: str) -> str:
    return (
        f"{t.get(f'{prefix}_cores')} cores, {t.get(f'{prefix}_memory_mib')} MiB, "
        f"{t.get(f'{prefix}_swap_mib')} MiB swap, {t.get(f'{prefix}_disk_gib')} GiB"
    )


def templates(json_: JsonOpt = False) -> None:
    """The templates you can create containers from, with their default and largest sizes."""
    rows = list(SESSION.api().pages("templates/"))
    if json_:
        print_json(rows)
        return
    table(
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


def nodes(json_: JsonOpt = False) -> None:
    """The hypervisors, their state and capacity (staff only)."""
    rows = list(SESSION.api().pages("nodes/"))
    if json_:
        print_json(rows)
        return
    table(
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
