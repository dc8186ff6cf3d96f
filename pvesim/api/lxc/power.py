"""CT power: start, stop, shutdown, reboot (and the start worker vzcreate reuses)."""

from __future__ import annotations

import re
from typing import Any

from pvesim import apidefs, guestconf
from pvesim.api.lxc.shared import MIB, POWER, ROOT, static_ips, stop_guest_processes
from pvesim.errors import die, param_error
from pvesim.router import Ctx, route
from pvesim.state import Guest, SimState
from pvesim.tasks import Worker, WorkerBody, WorkerContext


def start_steps(w: WorkerContext, node: str, vmid: int, skiplock: bool) -> Worker:
    """The vzstart worker (also run at the end of vzcreate with start=1)."""
    state = w.state
    guest = state.load_config(node, vmid)
    if int(guest.conf.get("template", 0) or 0):
        raise die("you can't start a CT if it's a template")
    lock = guest.conf.get("lock")
    if lock and not skiplock and lock != "mounted":
        raise die(f"CT is locked ({lock})")
    yield from w.work(seconds=state.task_duration("vzstart"))
    guest = state.load_config(node, vmid)
    nd = state.nodes[node]
    want = int(guest.conf.get("memory", 512)) * MIB
    running = sum(
        int(g.conf.get("memory", 512)) * MIB for g in state.guests_on(node) if g.status == "running"
    )
    if running + want > nd.memory:
        w.log(
            f"lxc-start: {vmid}: ../src/lxc/cgroups/cgfsng.c: cgroup memory limit exceeds host memory"
        )
        raise die(f"startup for container '{vmid}' failed")
    guest.status = "running"
    guest.started_at = state.now()
    guest.pid = state.next_pid()
    _lease_addresses(state, guest)
    state.mark_dirty()


def _lease_addresses(state: SimState, guest: Guest) -> None:
    for key, value in guest.conf.items():
        if re.fullmatch(r"net\d+", key):
            net = guestconf.parse_net(str(value))
            if net.get("ip") == "dhcp" and net.get("hwaddr"):
                state.dhcp.address_for(
                    str(net["hwaddr"]), net.get("bridge"), state.leases, static_ips(state)
                )


def _check_skiplock(ctx: Ctx, p: dict[str, Any]) -> bool:
    skiplock = bool(p.get("skiplock"))
    if skiplock and ctx.authuser != ROOT:
        raise param_error({"skiplock": "Only root may use this option."})
    return skiplock


def _running(state: SimState, node: str, vmid: int) -> bool:
    guest = state.guests.get(vmid)
    return (
        guest is not None
        and guest.node == node
        and guest.type == "lxc"
        and guest.status == "running"
    )


@route(
    "POST",
    "/nodes/{node}/lxc/{vmid}/status/start",
    params=apidefs.LXC_START,
    perm=POWER,
    proxy=True,
)
def vm_start(ctx: Ctx, p: dict[str, Any]) -> str:
    state = ctx.state
    node, vmid = p["node"], p["vmid"]
    skiplock = _check_skiplock(ctx, p)
    if _running(state, node, vmid):
        raise die(f"CT {vmid} already running")
    state.check_quorum()
    state.wait_flock(vmid)

    def worker(w: WorkerContext) -> Worker:
        yield from start_steps(w, node, vmid, skiplock)

    return state.fork_worker(node, "vzstart", str(vmid), ctx.authuser, worker)


def _stop_worker(node: str, vmid: int, skiplock: bool, check_all_locks: bool) -> WorkerBody:
    def worker(w: WorkerContext) -> Worker:
        state = w.state
        guest = state.load_config(node, vmid)
        lock = guest.conf.get("lock")
        if lock and (check_all_locks or (not skiplock and lock != "mounted")):
            raise die(f"CT is locked ({lock})")
        yield from w.work()
        yield from stop_guest_processes(w, vmid)
        guest = state.load_config(node, vmid)
        guest.status = "stopped"
        guest.started_at = None
        guest.pid = None
        state.mark_dirty()

    return worker


@route(
    "POST", "/nodes/{node}/lxc/{vmid}/status/stop", params=apidefs.LXC_STOP, perm=POWER, proxy=True
)
def vm_stop(ctx: Ctx, p: dict[str, Any]) -> str:
    state = ctx.state
    node, vmid = p["node"], p["vmid"]
    skiplock = _check_skiplock(ctx, p)
    if not _running(state, node, vmid):
        raise die(f"CT {vmid} not running")
    state.wait_flock(vmid)
    overruled = []
    if p.get("overrule-shutdown"):
        for upid, run in list(state.workers.items()):
            task = run.ctx.task
            if task.type == "vzshutdown" and task.id == str(vmid) and task.node == node:
                overruled.append(upid)
                state.abort_worker(upid)
    upid = state.fork_worker(
        node, "vzstop", str(vmid), ctx.authuser, _stop_worker(node, vmid, skiplock, False)
    )
    for old in overruled:
        state.tasks[upid].log.append(f"overruled shutdown task {old}")
    return upid


@route(
    "POST",
    "/nodes/{node}/lxc/{vmid}/status/shutdown",
    params=apidefs.LXC_SHUTDOWN,
    perm=POWER,
    proxy=True,
)
def vm_shutdown(ctx: Ctx, p: dict[str, Any]) -> str:
    state = ctx.state
    node, vmid = p["node"], p["vmid"]
    if not _running(state, node, vmid):
        raise die(f"CT {vmid} not running")
    state.wait_flock(vmid)
    return state.fork_worker(
        node, "vzshutdown", str(vmid), ctx.authuser, _stop_worker(node, vmid, False, True)
    )


@route(
    "POST",
    "/nodes/{node}/lxc/{vmid}/status/reboot",
    params=apidefs.LXC_REBOOT,
    perm=POWER,
    proxy=True,
)
def vm_reboot(ctx: Ctx, p: dict[str, Any]) -> str:
    state = ctx.state
    node, vmid = p["node"], p["vmid"]
    if not _running(state, node, vmid):
        raise die(f"VM {vmid} not running")

    def worker(w: WorkerContext) -> Worker:
        yield from w.work()
        yield from stop_guest_processes(w, vmid)
        guest = state.load_config(node, vmid)
        guest.started_at = state.now()
        guest.pid = state.next_pid()
        state.mark_dirty()

    return state.fork_worker(node, "vzreboot", str(vmid), ctx.authuser, worker)
