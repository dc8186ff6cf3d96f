"""Reads for the charts: Proxmox's RRD and live swap, cached briefly, never stored.

`rrddata` is Proxmox's own history (PVE 9: hour and day at 60 s, week and month at
30 min, year at 6 h). It is read when someone looks and cached for
METRICS_HISTORY_CACHE_SECONDS per container, range and consolidation, so a page that
many people watch costs one call per range per period. Swap is not in the bulk
resources call: it is read from `status/current`, cached the same way.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.cache import cache

from ..models import Container
from ..proxmox import ProxmoxClient, ProxmoxError, ProxmoxUnavailable

log = logging.getLogger(__name__)

TIMEFRAMES = ("hour", "day", "week", "month", "year")
CONSOLIDATIONS = ("AVERAGE", "MAX")


def _key(kind: str, c: Container, *parts: str) -> str:
    return ":".join(("metrics", kind, str(c.node_id), str(c.vmid), *parts))


def container_history(container: Container, *, timeframe: str, cf: str) -> dict[str, Any]:
    """{"step": seconds, "points": [...]} for a range; raises the client's errors."""
    key = _key("rrd", container, timeframe, cf)
    found = cache.get(key)
    if found is None:
        node = container.node
        points = ProxmoxClient.for_node(node).rrddata(
            node.name, container.vmid, timeframe=timeframe, cf=cf
        )
        # The step as served (PVE 8 and 9 differ): the distance between two points.
        step = int(points[1]["time"] - points[0]["time"]) if len(points) > 1 else 0
        found = {"step": step, "points": points}
        cache.set(key, found, settings.METRICS_HISTORY_CACHE_SECONDS)
    return found


def container_swap(container: Container) -> dict[str, int] | None:
    """{"swap", "maxswap"} in bytes from status/current, or None when it cannot be read."""
    key = _key("swap", container)
    found = cache.get(key)
    if found is None:
        node = container.node
        try:
            status = ProxmoxClient.for_node(node).container_status(node.name, container.vmid)
        except (ProxmoxError, ProxmoxUnavailable) as exc:
            log.info("metrics: no swap for %s: %s", container, exc)
            return None
        found = {"swap": int(status.get("swap") or 0), "maxswap": int(status.get("maxswap") or 0)}
        cache.set(key, found, settings.METRICS_HISTORY_CACHE_SECONDS)
    return dict(found)
