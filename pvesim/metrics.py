"""Plausible, slowly changing usage figures for guests and nodes.

Values are a deterministic function of (vmid, time), so two calls a second
apart agree closely and the RRD history is consistent with current status.
Stopped guests report zero usage.
"""

from __future__ import annotations

import hashlib
import math
from typing import TYPE_CHECKING, Any

from pvesim.formats import parse_size

if TYPE_CHECKING:
    from pvesim.state import Guest, Node, SimState

MIB = 1 << 20
GIB = 1 << 30

RRD_STEPS = {"hour": 60, "day": 1800, "week": 10800, "month": 43200, "year": 604800}
RRD_POINTS = 70


def _jitter(seed: int, bucket: int) -> float:
    digest = hashlib.blake2b(f"{seed}:{bucket}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") / 0xFFFFFFFF


def wave(seed: int, t: float, period: float = 900.0) -> float:
    """A value in [0, 1]: a slow sine plus a little noise every 10 s."""
    phase = (seed * 0.618) % 1.0
    base = 0.5 + 0.4 * math.sin(2 * math.pi * (t / period + phase))
    return max(0.0, min(1.0, base + 0.1 * (_jitter(seed, int(t // 10)) - 0.5)))


def guest_limits(guest: Guest, node: Node) -> dict[str, Any]:
    conf = guest.conf
    memory = int(conf.get("memory", 512))
    swap = int(conf.get("swap", 512))
    # vmstatus: cpulimit if set, else cores, else every host CPU
    cpus: int | float = int(conf.get("cores", node.cpus))
    if float(conf.get("cpulimit", 0) or 0):
        cpus = float(conf["cpulimit"])
    maxdisk = 0
    root = conf.get("rootfs") or conf.get("scsi0") or ""
    for part in str(root).split(","):
        if part.startswith("size="):
            maxdisk = parse_size(part[5:]) or 0
    return {"maxmem": memory * MIB, "maxswap": swap * MIB, "cpus": cpus, "maxdisk": maxdisk}


def guest_usage(guest: Guest, node: Node, now: float) -> dict[str, Any]:
    lim = guest_limits(guest, node)
    running = guest.status == "running" and guest.started_at is not None
    seed = guest.vmid
    if not running:
        return {
            "cpu": 0,
            "mem": 0,
            "swap": 0,
            "disk": 0,
            "uptime": 0,
            "netin": 0,
            "netout": 0,
            "diskread": 0,
            "diskwrite": 0,
            "pressurecpusome": 0,
            "pressurecpufull": 0,
            "pressureiosome": 0,
            "pressureiofull": 0,
            "pressurememorysome": 0,
            "pressurememoryfull": 0,
            **lim,
        }
    assert guest.started_at is not None
    uptime = max(0, int(now - guest.started_at))
    w = wave(seed, now)
    mem = int(lim["maxmem"] * (0.12 + 0.3 * w))
    rate = 800 + seed % 4000
    return {
        "cpu": round(0.005 + 0.12 * w, 4),
        "mem": max(mem, 16 * MIB),
        "swap": int(lim["maxswap"] * 0.03 * w),
        "disk": int(lim["maxdisk"] * (0.08 + 0.02 * wave(seed + 7, now, 86400))),
        "uptime": uptime,
        "netin": int(uptime * rate * (1.0 + 0.2 * w)) + 4096,
        "netout": int(uptime * rate * 0.4 * (1.0 + 0.2 * w)) + 2048,
        "diskread": int(uptime * 2048 + 60 * MIB),
        "diskwrite": int(uptime * 4096 + 12 * MIB),
        "pressurecpusome": round(0.2 * w, 2),
        "pressurecpufull": 0,
        "pressureiosome": round(0.1 * w, 2),
        "pressureiofull": round(0.05 * w, 2),
        "pressurememorysome": 0,
        "pressurememoryfull": 0,
        **lim,
    }


def node_usage(state: SimState, node: Node, now: float) -> dict[str, Any]:
    running = [g for g in state.guests_on(node.name) if g.status == "running"]
    guest_mem = sum(guest_usage(g, node, now)["mem"] for g in running)
    guest_cpu = sum(
        float(guest_usage(g, node, now)["cpu"]) * float(guest_limits(g, node)["cpus"])
        for g in running
    )
    seed = node.nodeid * 7919
    used = min(node.memory, int(1.8 * GIB + 0.4 * GIB * wave(seed, now)) + guest_mem)
    cpu = min(1.0, 0.01 + 0.03 * wave(seed, now) + guest_cpu / max(1, node.cpus))
    load = cpu * node.cpus
    return {
        "cpu": round(cpu, 5),
        "maxcpu": node.cpus,
        "mem": used,
        "maxmem": node.memory,
        "uptime": int(now - node.boot_time),
        "loadavg": [f"{load:.2f}", f"{load * 0.9:.2f}", f"{load * 0.8:.2f}"],
        "rootfs_total": 94 * GIB,
        "rootfs_used": int(7.5 * GIB),
        "swap_total": 8 * GIB,
        "swap_used": int(64 * MIB * wave(seed + 1, now)),
    }


def rrd_points(
    guest: Guest, node: Node, timeframe: str, cf: str, now: float
) -> list[dict[str, Any]]:
    step = RRD_STEPS[timeframe]
    end = int(now // step) * step
    points: list[dict[str, Any]] = []
    lim = guest_limits(guest, node)
    for i in range(RRD_POINTS):
        t = end - (RRD_POINTS - 1 - i) * step
        if t < guest.created_at - step:
            points.append({"time": t})  # no data yet: Proxmox leaves the fields out
            continue
        running = (
            guest.status == "running" and guest.started_at is not None and guest.started_at <= t
        )
        point: dict[str, Any] = {
            "time": t,
            "maxcpu": lim["cpus"],
            "maxmem": lim["maxmem"],
            "maxdisk": lim["maxdisk"],
        }
        if running:
            w = wave(guest.vmid, t)
            peak = 1.3 if cf == "MAX" else 1.0
            point.update(
                {
                    "cpu": round((0.005 + 0.12 * w) * peak, 5),
                    "mem": int(lim["maxmem"] * (0.12 + 0.3 * w) * min(peak, 1.15)),
                    "disk": int(lim["maxdisk"] * 0.09),
                    "netin": round((800 + guest.vmid % 4000) * (1 + 0.2 * w) * peak, 2),
                    "netout": round((320 + guest.vmid % 1600) * (1 + 0.2 * w) * peak, 2),
                    "diskread": round(2048 * peak, 2),
                    "diskwrite": round(4096 * (1 + w) * peak, 2),
                }
            )
        else:
            point.update(
                {
                    "cpu": 0,
                    "mem": 0,
                    "disk": 0,
                    "netin": 0,
                    "netout": 0,
                    "diskread": 0,
                    "diskwrite": 0,
                }
            )
        points.append(point)
    return points
