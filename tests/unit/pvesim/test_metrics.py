"""pvesim's usage figures as pure functions: counters that agree with the RRD's rates."""

from __future__ import annotations

import itertools

import pytest

from pvesim import metrics
from pvesim.state import Guest, Node

NODE = Node("pve1", 1, 8, 64 << 30, 0.0, {})
NOW = 1_800_000_000.0


def guest(**over: object) -> Guest:
    conf = {"memory": 1024, "cores": 2, "rootfs": "local-lvm:vm-105-disk-0,size=8G"}
    fields = {"vmid": 105, "node": "pve1", "conf": conf, "status": "running"}
    fields.update(started_at=NOW - 7 * 86400, created_at=NOW - 8 * 86400)
    fields.update(over)
    return Guest(**fields)  # type: ignore[arg-type]


def test_counters_never_go_down_while_running() -> None:
    g = guest()
    values = [metrics.guest_usage(g, NODE, NOW + t)["netin"] for t in range(0, 3600, 7)]
    assert all(b >= a for a, b in itertools.pairwise(values))


@pytest.mark.parametrize(
    ("timeframe", "step", "count"),
    [
        ("hour", 60, 60),
        ("day", 60, 1440),
        ("week", 1800, 336),
        ("month", 1800, 1440),
        ("year", 21600, 1440),
    ],
)
def test_resolution_and_the_counters_agree(timeframe: str, step: int, count: int) -> None:
    g = guest()
    points = metrics.rrd_points(g, NODE, timeframe, "AVERAGE", NOW)
    assert len(points) == count and points[-1]["time"] == NOW // step * step
    t = points[-1]["time"]
    grew = (
        metrics.guest_usage(g, NODE, t)["diskwrite"]
        - metrics.guest_usage(g, NODE, t - step)["diskwrite"]
    )
    assert grew / step == pytest.approx(points[-1]["diskwrite"], rel=1e-3)
    top = metrics.rrd_points(g, NODE, timeframe, "MAX", NOW)
    assert all(m.get("cpu", 0) >= a.get("cpu", 0) for a, m in zip(points, top, strict=True))


def test_empty_buckets_before_the_ct_and_zeros_while_stopped() -> None:
    g = guest(created_at=NOW - 1800, started_at=None, status="stopped")
    points = metrics.rrd_points(g, NODE, "hour", "AVERAGE", NOW)
    assert points[0] == {"time": points[0]["time"]}
    assert points[-1]["cpu"] == 0 and points[-1]["netin"] == 0 and "memhost" in points[-1]
