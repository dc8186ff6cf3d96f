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


# -- a node's load averages ---------------------------------------------------------------
class OneNode:
    """The part of SimState that node_usage reads: the guests on a node."""

    def __init__(self, *guests: Guest) -> None:
        self.guests = guests

    def guests_on(self, node: str) -> list[Guest]:
        return [g for g in self.guests if g.node == node]


def loads(state: OneNode, at: float) -> list[float]:
    figures = metrics.node_usage(state, NODE, at)  # type: ignore[arg-type]
    assert all(isinstance(x, str) and x == f"{float(x):.2f}" for x in figures["loadavg"])
    return [float(x) for x in figures["loadavg"]]


def busy(vmid: int, cores: int, cpu: float, at: float) -> Guest:
    g = guest(vmid=vmid, conf={"memory": 1024, "cores": cores})
    g.usage = {"at": at, "values": {"cpu": cpu}, "rates": {}}
    return g


def test_the_load_averages_follow_a_step_in_demand_as_damped_means() -> None:
    state = OneNode(busy(105, 4, 1.0, NOW))  # 4 cores pinned from NOW on
    before = loads(state, NOW)
    assert all(x < 1.5 for x in before)  # the generated demand: a few tenths of its 4 cores
    one, five, fifteen = loads(state, NOW + 120)
    assert one > five > fifteen  # the 1-minute figure moves first
    assert 3.4 < one < 4.8 and fifteen < 2.0
    settled = loads(state, NOW + 3 * 3600)
    assert all(4.0 < x < 4.8 for x in settled)  # the demand plus the host's own work


def test_an_overcommitted_node_has_a_load_above_its_cpus_with_cpu_at_one() -> None:
    state = OneNode(*(busy(105 + i, 4, 1.0, NOW - 7200) for i in range(3)))
    figures = metrics.node_usage(state, NODE, NOW)  # type: ignore[arg-type]
    assert figures["cpu"] == 1.0 and NODE.cpus == 8
    assert all(12.0 < float(x) < 13.0 for x in figures["loadavg"])


def test_a_stopped_guest_adds_no_load_and_a_started_one_ramps_up() -> None:
    stopped = guest(status="stopped", started_at=None)
    assert loads(OneNode(stopped), NOW) == loads(OneNode(), NOW)
    fresh = busy(105, 8, 0.5, NOW)
    fresh.started_at = NOW
    assert loads(OneNode(fresh), NOW) == loads(OneNode(), NOW)
    assert loads(OneNode(fresh), NOW + 600)[0] > 4.0


def test_the_root_filesystem_is_the_one_local_lives_on() -> None:
    from pvesim.state import Storage

    local = Storage("local", "dir", ("vztmpl",), 100 << 30, 10 << 30)
    node = Node("pve1", 1, 8, 64 << 30, 0.0, {"local": local})
    figures = metrics.node_usage(OneNode(), node, NOW)  # type: ignore[arg-type]
    assert (figures["rootfs_total"], figures["rootfs_used"]) == (100 << 30, 10 << 30)
