"""CT snapshots: list, create, delete, rollback (pve-container Snapshot.pm)."""

from __future__ import annotations

from typing import Any

from pvesim import apidefs
from pvesim.api.lxc.power import start_steps
from pvesim.api.lxc.shared import check_lock, stop_guest_processes
from pvesim.errors import die
from pvesim.router import Ctx, Perm, route
from pvesim.state import Guest
from pvesim.tasks import Worker, WorkerContext

SNAP = Perm("/vms/{vmid}", ("VM.Snapshot",))

_NOT_SNAPSHOTTED = ("lock", "parent", "snaptime", "snapstate")


def _snapshot_conf(guest: Guest, description: str | None, now: float) -> dict[str, Any]:
    snap = {k: v for k, v in guest.conf.items() if k not in _NOT_SNAPSHOTTED}
    if description:
        snap["description"] = description.rstrip("\n")
    else:
        snap.pop("description", None)
    if guest.conf.get("parent"):
        snap["parent"] = guest.conf["parent"]
    snap["snaptime"] = int(now)
    return snap


@route(
    "GET",
    "/nodes/{node}/lxc/{vmid}/snapshot",
    params=apidefs.NODE_VMID,
    perm=Perm("/vms/{vmid}", ("VM.Audit",)),
    proxy=True,
)
def snapshot_list(ctx: Ctx, p: dict[str, Any]) -> list[dict[str, Any]]:
    guest = ctx.state.load_config(p["node"], p["vmid"])
    out = []
    for name, snap in sorted(guest.snapshots.items(), key=lambda kv: kv[1].get("snaptime", 0)):
        entry: dict[str, Any] = {
            "name": name,
            "description": str(snap.get("description", "")),
            "snaptime": int(snap.get("snaptime", 0)),
        }
        if snap.get("parent"):
            entry["parent"] = snap["parent"]
        out.append(entry)
    current: dict[str, Any] = {
        "name": "current",
        "description": "You are here!",
        "running": 1 if guest.status == "running" else 0,
    }
    if guest.conf.get("parent"):
        current["parent"] = guest.conf["parent"]
    out.append(current)
    return out


@route(
    "POST",
    "/nodes/{node}/lxc/{vmid}/snapshot",
    params=apidefs.SNAPSHOT_CREATE,
    perm=SNAP,
    proxy=True,
)
def snapshot_create(ctx: Ctx, p: dict[str, Any]) -> str:
    state = ctx.state
    node, vmid, snapname = p["node"], p["vmid"], p["snapname"]
    if snapname in ("current", "vzdump"):
        raise die(f"unable to use snapshot name '{snapname}' (reserved name)")

    def worker(w: WorkerContext) -> Worker:
        guest = state.load_config(node, vmid)
        check_lock(guest)
        if snapname in guest.snapshots:
            raise die(f"snapshot name '{snapname}' already used")
        guest.conf["lock"] = "snapshot"
        try:
            yield from w.work()
        finally:
            guest.conf.pop("lock", None)
        guest.snapshots[snapname] = _snapshot_conf(guest, p.get("description"), state.now())
        guest.conf["parent"] = snapname
        state.mark_dirty()

    return state.fork_worker(node, "vzsnapshot", str(vmid), ctx.authuser, worker)


@route(
    "GET", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}", params=apidefs.SNAPSHOT_ITEM, proxy=True
)
def snapshot_index(ctx: Ctx, p: dict[str, Any]) -> list[dict[str, Any]]:
    guest = ctx.state.load_config(p["node"], p["vmid"])
    if p["snapname"] not in guest.snapshots:
        raise die(f"snapshot '{p['snapname']}' does not exist")
    return [{"cmd": "rollback"}, {"cmd": "config"}]


@route(
    "DELETE",
    "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}",
    params=apidefs.SNAPSHOT_DELETE,
    perm=SNAP,
    proxy=True,
)
def snapshot_delete(ctx: Ctx, p: dict[str, Any]) -> str:
    state = ctx.state
    node, vmid, snapname = p["node"], p["vmid"], p["snapname"]

    def worker(w: WorkerContext) -> Worker:
        guest = state.load_config(node, vmid)
        snap = guest.snapshots.get(snapname)
        if snap is None:
            raise die(f"snapshot '{snapname}' does not exist")
        if not p.get("force"):
            check_lock(guest)
        guest.conf["lock"] = "snapshot-delete"
        try:
            yield from w.work()
        finally:
            guest.conf.pop("lock", None)
        parent = snap.get("parent")
        del guest.snapshots[snapname]
        for other in guest.snapshots.values():
            if other.get("parent") == snapname:
                if parent:
                    other["parent"] = parent
                else:
                    other.pop("parent", None)
        if guest.conf.get("parent") == snapname:
            if parent:
                guest.conf["parent"] = parent
            else:
                guest.conf.pop("parent", None)
        state.mark_dirty()

    return state.fork_worker(node, "vzdelsnapshot", str(vmid), ctx.authuser, worker)


@route(
    "POST",
    "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/rollback",
    params=apidefs.SNAPSHOT_ROLLBACK,
    perm=Perm("/vms/{vmid}", ("VM.Snapshot", "VM.Snapshot.Rollback"), any=True),
    proxy=True,
)
def snapshot_rollback(ctx: Ctx, p: dict[str, Any]) -> str:
    state = ctx.state
    node, vmid, snapname = p["node"], p["vmid"], p["snapname"]

    def worker(w: WorkerContext) -> Worker:
        guest = state.load_config(node, vmid)
        if int(guest.conf.get("template", 0) or 0):
            raise die("you can't rollback if vm is a template")
        snap = guest.snapshots.get(snapname)
        if snap is None:
            raise die(f"snapshot '{snapname}' does not exist")
        check_lock(guest)
        guest.conf["lock"] = "rollback"
        if guest.status == "running":
            w.log(f"stopping CT {vmid} for rollback")
            yield from stop_guest_processes(w, vmid)
            guest = state.load_config(node, vmid)
            guest.status, guest.started_at, guest.pid = "stopped", None, None
        yield from w.work()
        restored = {k: v for k, v in snap.items() if k not in ("snaptime", "snapstate", "parent")}
        restored["parent"] = snapname
        guest.conf = restored
        state.mark_dirty()
        if p.get("start"):
            yield from start_steps(w, node, vmid, skiplock=False)

    return state.fork_worker(node, "vzrollback", str(vmid), ctx.authuser, worker)
