"""Usage figures and the RRD as Proxmox VE 9 serves them, and the admin calls that let a
test control them (/_sim/guests/usage) and count API calls (/_sim/requests/counts)."""

from __future__ import annotations

import itertools

import pytest
from proxmoxer import ProxmoxAPI

from pvesim.testing import SimAdmin, SimulatorThread
from tests.functional.pvesim.helpers import create_ct

# rrd_def_vm_pve9_0 (pve-cluster status.c): every field of a bucket with data.
RRD_FIELDS = {
    "time",
    "maxcpu",
    "cpu",
    "maxmem",
    "mem",
    "maxdisk",
    "disk",
    "netin",
    "netout",
    "diskread",
    "diskwrite",
    "memhost",
    "pressurecpusome",
    "pressurecpufull",
    "pressureiosome",
    "pressureiofull",
    "pressurememorysome",
    "pressurememoryfull",
}
# PVE/RRD.pm in PVE 9: timeframe -> (step, points).
PVE9 = {
    "hour": (60, 60),
    "day": (60, 1440),
    "week": (1800, 336),
    "month": (1800, 1440),
    "year": (21600, 1440),
}


@pytest.mark.parametrize("timeframe", sorted(PVE9))
@pytest.mark.parametrize("cf", ["AVERAGE", "MAX"])
def test_rrd_resolution_and_fields(
    pve: ProxmoxAPI, sim_admin: SimAdmin, timeframe: str, cf: str
) -> None:
    create_ct(pve, 105, start=1)
    sim_admin.set_manual_clock()
    now = sim_admin.advance_clock(3 * 86400)
    points = pve.nodes("pve1").lxc(105).rrddata.get(timeframe=timeframe, cf=cf)
    step, count = PVE9[timeframe]
    assert len(points) == count
    times = [p["time"] for p in points]
    assert all(b - a == step for a, b in itertools.pairwise(times))
    assert times[-1] == int(now // step) * step and times[-1] % step == 0
    full = [p for p in points if len(p) > 1]
    empty = [p for p in points if len(p) == 1]
    assert full and all(set(p) == RRD_FIELDS for p in full)
    # Buckets from before the CT existed carry only `time` (week/month/year reach back).
    assert all(set(p) == {"time"} for p in empty)
    assert bool(empty) == (count * step > 3 * 86400)
    last = full[-1]
    assert 0 < last["cpu"] <= 1 and 0 < last["mem"] <= last["memhost"] <= last["maxmem"]
    assert all(isinstance(last[k], float) for k in ("netin", "netout", "diskread", "diskwrite"))


def test_max_is_never_below_average(pve: ProxmoxAPI, sim_admin: SimAdmin) -> None:
    create_ct(pve, 105, start=1)
    sim_admin.set_manual_clock()
    sim_admin.advance_clock(2 * 86400)
    ct = pve.nodes("pve1").lxc(105)
    for timeframe in ("hour", "day"):
        avg = ct.rrddata.get(timeframe=timeframe, cf="AVERAGE")
        top = ct.rrddata.get(timeframe=timeframe, cf="MAX")
        for a, m in zip(avg, top, strict=True):
            assert a["time"] == m["time"]
            for key in ("cpu", "mem", "netin", "netout", "diskwrite", "pressurecpusome"):
                assert m.get(key, 0) >= a.get(key, 0), (timeframe, key, a, m)


def test_network_and_disk_are_rates_the_counters_agree_with(
    pve: ProxmoxAPI, sim_admin: SimAdmin
) -> None:
    """An hour bucket's netin is the counter's growth over that minute, per second."""
    create_ct(pve, 105, start=1)
    sim_admin.set_manual_clock()
    now = sim_admin.advance_clock(7200)
    ct = pve.nodes("pve1").lxc(105)
    # Half a second past a minute's start, so that float rounding cannot move a bucket.
    boundary = sim_admin.advance_clock(int(now // 60) * 60 + 60.5 - now) - 0.5
    before = ct.status.current.get()
    sim_admin.advance_clock(60)
    after = ct.status.current.get()
    point = ct.rrddata.get(timeframe="hour")[-1]
    assert point["time"] == round(boundary) + 60
    for key in ("netin", "netout", "diskread", "diskwrite"):
        grew = (after[key] - before[key]) / 60
        assert after[key] >= before[key]
        assert grew == pytest.approx(point[key], rel=0.01, abs=1), key


def test_usage_a_test_sets_shows_everywhere(pve: ProxmoxAPI, sim_admin: SimAdmin) -> None:
    create_ct(pve, 105, start=1, memory=1024)
    sim_admin.set_manual_clock()
    sim_admin.advance_clock(600)
    sim_admin.set_guest_usage(
        105,
        values={"cpu": 0.97, "mem": 1000 << 20, "pressurememorysome": 42.5, "netin": 10_000},
        rates={"netin": 5000, "diskwrite": 250},
    )
    ct = pve.nodes("pve1").lxc(105)
    cur = ct.status.current.get()
    assert (cur["cpu"], cur["mem"], cur["pressurememorysome"], cur["netin"]) == (
        0.97,
        1000 << 20,
        42.5,
        10_000,
    )
    sim_admin.advance_clock(120)
    res = next(r for r in pve.cluster.resources.get(type="vm") if r["vmid"] == 105)
    assert res["netin"] == 10_000 + 120 * 5000 and res["diskwrite"] == 120 * 250
    assert res["cpu"] == 0.97
    point = ct.rrddata.get(timeframe="hour")[-1]
    assert point["cpu"] == 0.97 and point["pressurememorysome"] == 42.5
    assert (point["netin"], point["diskwrite"]) == (5000.0, 250.0)
    sim_admin.clear_guest_usage(105)
    assert ct.status.current.get()["cpu"] < 0.2
    with pytest.raises(Exception, match="cannot set bogus"):
        sim_admin.set_guest_usage(105, values={"bogus": 1})


def test_request_counts(pve: ProxmoxAPI, sim_admin: SimAdmin) -> None:
    sim_admin.reset_request_counts()
    pve.cluster.resources.get(type="vm")
    pve.cluster.resources.get(type="vm")
    pve.version.get()
    assert sim_admin.request_counts() == {"GET /cluster/resources": 2, "GET /version": 1}
    sim_admin.reset_request_counts()
    assert sim_admin.request_counts() == {}


def test_bulk_foreign_guests(pve_sim: SimulatorThread, sim_admin: SimAdmin) -> None:
    made = sim_admin.create_foreign_guests(
        [{"node": "pve1", "vmid": 1000 + i, "status": "running"} for i in range(50)]
    )
    assert made == list(range(1000, 1050))
    vm = pve_sim.proxmox().cluster.resources.get(type="vm")
    assert sum(1 for r in vm if r["status"] == "running" and r["vmid"] >= 1000) == 50
