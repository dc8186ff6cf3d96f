"""Plausible, slowly changing usage figures for guests and nodes.

Values are a deterministic function of (vmid, time), so two calls a second
apart agree closely and the RRD history is consistent with current status.
Stopped guests report zero usage.

Invariants the portal's tests rely on:
- the byte counters (netin, netout, diskread, diskwrite) never go down while a guest runs:
  they are exact integrals of the rates the RRD reports, and start again from zero (plus
  boot reads) when it starts;
- the RRD has Proxmox VE 9's resolution (`RRD_RESOLUTION`, PVE/RRD.pm) and fields
  (`rrd_def_vm_pve9_0` in pve-cluster's status.c): net and disk as bytes/s (DERIVE),
  `memhost`, and the six pressure (PSI) figures; a bucket without data is `{"time"}` only;
  cf=MAX is never below cf=AVERAGE;
- figures a test set with `/_sim/guests/usage` (`Guest.usage`) win over the generated ones
  from the moment they were set, in status/current, /cluster/resources and the RRD alike;
- a node's `loadavg` is its guests' CPU demand (cpu x cores, uncapped) plus the host's
  own, damped over 1, 5 and 15 minutes as Linux does: a change shows in the 1-minute
  figure within a few minutes and in the 15-minute one much later.
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

# timeframe -> (step in seconds, points): PVE 9's RRAs.
RRD_RESOLUTION: dict[str, tuple[int, int]] = {
    "hour": (60, 60),
    "day": (60, 1440),
    "week": (1800, 336),
    "month": (1800, 1440),
    "year": (21600, 1440),
}
COUNTERS = ("netin", "netout", "diskread", "diskwrite")
PRESSURE = (
    "pressurecpusome",
    "pressurecpufull",
    "pressureiosome",
    "pressureiofull",
    "pressurememorysome",
    "pressurememoryfull",
)
# What a test may set through /_sim/guests/usage.
GAUGES = ("cpu", "mem", "swap", "disk", "memhost", *PRESSURE)
SETTABLE = (*GAUGES, *COUNTERS)
PERIOD = 900.0  # the usage wave's period (s)
DEFAULT_MAXDISK = 4 * GIB  # vmstatus's maxdisk for a rootfs without a size


def _jitter(seed: int, bucket: int) -> float:
    digest = hashlib.blake2b(f"{seed}:{bucket}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") / 0xFFFFFFFF


def _phase(seed: int) -> float:
    return (seed * 0.618) % 1.0


def _sine(seed: int, t: float, period: float = PERIOD) -> float:
    return math.sin(2 * math.pi * (t / period + _phase(seed)))


def _sine_integral(seed: int, a: float, b: float, period: float = PERIOD) -> float:
    """The integral of `_sine` from a to b."""
    x = 2 * math.pi / period
    ph = 2 * math.pi * _phase(seed)
    return (math.cos(x * a + ph) - math.cos(x * b + ph)) / x


def _sine_max(seed: int, a: float, b: float, period: float = PERIOD) -> float:
    """The largest value of `_sine` on [a, b]."""
    if b - a >= period:
        return 1.0
    xa, xb = a / period + _phase(seed), b / period + _phase(seed)
    if math.floor(xb - 0.25) > math.floor(xa - 0.25):
        return 1.0  # a crest falls inside
    return max(_sine(seed, a, period), _sine(seed, b, period))


def wave(seed: int, t: float, period: float = PERIOD) -> float:
    """A value in [0, 1]: a slow sine plus a little noise every 10 s."""
    base = 0.5 + 0.4 * _sine(seed, t, period)
    return max(0.0, min(1.0, base + 0.1 * (_jitter(seed, int(t // 10)) - 0.5)))


def guest_limits(guest: Guest, node: Node) -> dict[str, Any]:
    """PVE::LXC::vmstatus's limits: maxmem (memory, default 512 MiB), maxswap (swap,
    default 0: vmstatus reads `swap // 0`, create writes 512), maxdisk (the rootfs size,
    4 GiB when it has none)."""
    conf = guest.conf
    memory = int(conf.get("memory", 512))
    swap = int(conf.get("swap", 0))
    # vmstatus: cpulimit if set, else cores, else every host CPU
    cpus: int | float = int(conf.get("cores", node.cpus))
    if float(conf.get("cpulimit", 0) or 0):
        cpus = float(conf["cpulimit"])
    maxdisk = DEFAULT_MAXDISK
    root = conf.get("rootfs") or conf.get("scsi0") or ""
    for part in str(root).split(","):
        if part.startswith("size="):
            maxdisk = parse_size(part[5:]) or DEFAULT_MAXDISK
    return {"maxmem": memory * MIB, "maxswap": swap * MIB, "cpus": cpus, "maxdisk": maxdisk}


# -- the generated figures -----------------------------------------------------


def _base_rates(vmid: int) -> dict[str, float]:
    """Each counter's mean rate (bytes/s); the wave moves it by +-20 %."""
    net = 800.0 + vmid % 4000
    return {"netin": net, "netout": 0.4 * net, "diskread": 2048.0, "diskwrite": 4096.0}


def _counter(vmid: int, key: str, since: float, now: float) -> int:
    """A counter's bytes from `since` to `now`: the exact integral of its rate."""
    rate = _base_rates(vmid)[key]
    return int(rate * ((now - since) + 0.2 * _sine_integral(vmid, since, now)))


def _gauges(lim: dict[str, Any], vmid: int, w: float, t: float) -> dict[str, Any]:
    """cpu, mem, memhost, disk and pressure for a wave value `w` in [0, 1]."""
    mem = max(int(lim["maxmem"] * (0.12 + 0.3 * w)), 16 * MIB)
    return {
        "cpu": round(0.005 + 0.12 * w, 5),
        "mem": mem,
        # The host's view adds the page cache the CT's own figure leaves out.
        "memhost": min(lim["maxmem"], int(mem * 1.08) + 24 * MIB),
        "disk": int(lim["maxdisk"] * (0.08 + 0.02 * wave(vmid + 7, t, 86400))),
        "pressurecpusome": round(0.2 * w, 2),
        "pressurecpufull": 0.0,
        "pressureiosome": round(0.1 * w, 2),
        "pressureiofull": round(0.05 * w, 2),
        "pressurememorysome": 0.0,
        "pressurememoryfull": 0.0,
    }


def _override(guest: Guest, now: float) -> dict[str, Any]:
    """What a test set (`/_sim/guests/usage`), counters moved on by their rates."""
    usage = guest.usage
    if not usage or usage["at"] > now:
        return {}
    out = dict(usage.get("values", {}))
    elapsed = now - float(usage["at"])
    for key, rate in usage.get("rates", {}).items():
        out[key] = int(out.get(key, 0) + float(rate) * elapsed)
    return out


def _zeros(lim: dict[str, Any]) -> dict[str, Any]:
    return {
        "cpu": 0,
        "mem": 0,
        "memhost": 0,
        "swap": 0,
        "disk": 0,
        "uptime": 0,
        **dict.fromkeys(COUNTERS, 0),
        **dict.fromkeys(PRESSURE, 0),
        **lim,
    }


def guest_usage(guest: Guest, node: Node, now: float) -> dict[str, Any]:
    lim = guest_limits(guest, node)
    if guest.status != "running" or guest.started_at is None:
        return _zeros(lim)
    seed, started = guest.vmid, guest.started_at
    w = wave(seed, now)
    out = _gauges(lim, seed, w, now)  # memhost: /cluster/resources only, not status/current
    out.update(
        {
            "swap": int(lim["maxswap"] * 0.03 * w),
            "uptime": max(0, int(now - started)),
            "netin": _counter(seed, "netin", started, now) + 4096,
            "netout": _counter(seed, "netout", started, now) + 2048,
            "diskread": _counter(seed, "diskread", started, now) + 60 * MIB,
            "diskwrite": _counter(seed, "diskwrite", started, now) + 12 * MIB,
            **lim,
        }
    )
    out.update(_override(guest, now))
    return out


# Linux's load averages: damped means of the run queue over 1, 5 and 15 minutes.
LOADAVG_WINDOWS = (60.0, 300.0, 900.0)
# A node without a `local` storage (unit tests): its root filesystem.
ROOTFS_TOTAL, ROOTFS_USED = 94 * GIB, int(7.5 * GIB)


def guest_load(guest: Guest, node: Node, now: float, window: float) -> float:
    """The guest's share of its node's load average over `window` seconds.

    Its run queue is its CPU demand, cpu x its cores, which the host does not cap: an
    overcommitted node's load passes its CPU count while its `cpu` stays at 1. The
    generated demand moves slowly (the 15 min wave) and counts as it is now; a step (the
    guest's start, figures a test set) is followed as the kernel's damped mean follows
    one: what was before fades by exp(-elapsed / window).
    """
    if guest.status != "running" or guest.started_at is None:
        return 0.0
    lim = guest_limits(guest, node)
    cpus = float(lim["cpus"])
    demand = float(_gauges(lim, guest.vmid, wave(guest.vmid, now), now)["cpu"]) * cpus
    usage = guest.usage
    if usage and "cpu" in usage.get("values", {}) and float(usage["at"]) <= now:
        fixed = float(usage["values"]["cpu"]) * cpus
        since = max(float(usage["at"]), guest.started_at)
        demand = fixed + (demand - fixed) * math.exp(-(now - since) / window)
    return demand * (1.0 - math.exp(-(now - guest.started_at) / window))


def node_usage(state: SimState, node: Node, now: float) -> dict[str, Any]:
    running = [g for g in state.guests_on(node.name) if g.status == "running"]
    guest_mem = sum(guest_usage(g, node, now)["mem"] for g in running)
    guest_cpu = sum(
        float(guest_usage(g, node, now)["cpu"]) * float(guest_limits(g, node)["cpus"])
        for g in running
    )
    seed = node.nodeid * 7919
    used = min(node.memory, int(1.8 * GIB + 0.4 * GIB * wave(seed, now)) + guest_mem)
    host = 0.01 + 0.03 * wave(seed, now)  # the host's own work, as a fraction of its CPUs
    cpu = min(1.0, host + guest_cpu / max(1, node.cpus))
    loads = [
        host * node.cpus + sum(guest_load(g, node, now, window) for g in running)
        for window in LOADAVG_WINDOWS
    ]
    # `local` (/var/lib/vz) lives on the root filesystem: its figures are the rootfs's.
    local = node.storages.get("local")
    return {
        "cpu": round(cpu, 5),
        "maxcpu": node.cpus,
        "mem": used,
        "maxmem": node.memory,
        "uptime": int(now - node.boot_time),
        "loadavg": [f"{load:.2f}" for load in loads],  # /proc/loadavg's text
        "rootfs_total": local.total if local else ROOTFS_TOTAL,
        "rootfs_used": local.used() if local else ROOTFS_USED,
        "swap_total": 8 * GIB,
        "swap_used": int(64 * MIB * wave(seed + 1, now)),
    }


# -- the RRD -------------------------------------------------------------------


def _bucket(guest: Guest, lim: dict[str, Any], t: int, step: int, cf: str) -> dict[str, Any]:
    """One running bucket (t - step, t], consolidated with `cf`."""
    vmid, a = guest.vmid, t - step
    mean = _sine_integral(vmid, a, t) / step
    peak = _sine_max(vmid, a, t)
    s = peak if cf == "MAX" else mean
    # Gauges: the wave's mean (MAX: its crest plus the largest jitter).
    w = 0.5 + 0.4 * s + (0.05 if cf == "MAX" else 0.0)
    point = _gauges(lim, vmid, max(0.0, min(1.0, w)), t)
    for key, rate in _base_rates(vmid).items():
        point[key] = round(rate * (1 + 0.2 * s), 2)
    usage = guest.usage
    if usage and float(usage["at"]) < t:
        values, rates = usage.get("values", {}), usage.get("rates", {})
        point.update({k: v for k, v in values.items() if k in point})
        # A counter set without a rate stands still.
        point.update({k: float(rates.get(k, 0.0)) for k in COUNTERS if k in values or k in rates})
    return point


def rrd_points(
    guest: Guest, node: Node, timeframe: str, cf: str, now: float
) -> list[dict[str, Any]]:
    step, count = RRD_RESOLUTION[timeframe]
    end = int(now // step) * step
    lim = guest_limits(guest, node)
    fixed = {"maxcpu": lim["cpus"], "maxmem": lim["maxmem"], "maxdisk": lim["maxdisk"]}
    running_since = guest.started_at if guest.status == "running" else None
    points: list[dict[str, Any]] = []
    for i in range(count):
        t = end - (count - 1 - i) * step
        if t < guest.created_at:
            points.append({"time": t})  # no data: Proxmox leaves every other field out
            continue
        if running_since is not None and running_since < t:
            points.append({"time": t, **fixed, **_bucket(guest, lim, t, step, cf)})
        else:
            stopped = {"cpu": 0, "mem": 0, "memhost": 0, "disk": 0}
            points.append(
                {
                    "time": t,
                    **fixed,
                    **stopped,
                    **dict.fromkeys(COUNTERS, 0),
                    **dict.fromkeys(PRESSURE, 0),
                }
            )
    return points
