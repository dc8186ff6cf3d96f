"""API handlers, one module per area; importing them registers the routes."""

from __future__ import annotations


def load_all() -> None:
    from pvesim.api import access, cluster, nodes, snapshots, tasks  # noqa: F401
    from pvesim.api.lxc import disks, lifecycle, power, status  # noqa: F401
