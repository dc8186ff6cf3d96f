"""API handlers, one module per area; importing them registers the routes."""

from __future__ import annotations


def load_all() -> None:
    from pvesim.api import access, cluster, lxc, nodes, snapshots, tasks  # noqa: F401
