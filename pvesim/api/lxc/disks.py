"""A CT's volumes: clone, resize, convert to a template."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pvesim import apidefs, guestconf
from pvesim.api.common import check_ct_modify_config_perm
from pvesim.api.lxc.shared import MIB, check_lock, free_volumes
from pvesim.errors import ApiError, InjectedFailure, TaskFailure, die, perm_error
from pvesim.formats import format_size, parse_size
from pvesim.router import Ctx, Perm, route
from pvesim.state import GIB, Guest, SimState
from pvesim.tasks import Worker, WorkerBody, WorkerContext

# Config keys a clone does not copy (besides unusedN).
_NOT_CLONED = ("lock", "template", "parent", "snaptime", "snapstate")

# -- clone -------------------------------------------------------------------


def _check_clone_request(ctx: Ctx, p: dict[str, Any]) -> str | None:
    """The checks before the source is loaded, in Proxmox's order; returns the target node."""
    state = ctx.state
    node, newid = p["node"], p["newid"]
    if not ctx.check(f"/vms/{newid}", ["VM.Allocate"], noerr=True) and not (
        p.get("pool") and ctx.check(f"/pool/{p['pool']}", ["VM.Allocate"], noerr=True)
    ):
        raise perm_error(f"/vms/{newid}, VM.Allocate")
    pool = p.get("pool")
    if pool is not None and pool not in state.pools:
        raise die(f"pool '{pool}' does not exist")
    target = p.get("target")
    if target in (node, "localhost"):
        target = None
    if target:
        state.node(target)
    storage = p.get("storage")
    if storage:
        state.storage(node, storage)
    return target


def _plan_clone(
    ctx: Ctx, p: dict[str, Any], src: Guest, target: str | None
) -> tuple[Any, dict[str, dict[str, Any]], dict[str, Any]]:
    """Under the source's lock: (full, the mount points to copy, the new config)."""
    storage = p.get("storage")
    full = p.get("full")
    is_template = bool(int(src.conf.get("template", 0) or 0))
    if full is None:
        full = not is_template
    if storage and not full:
        raise die("parameter 'storage' not allowed for linked clones")
    snapname = p.get("snapname")
    if snapname and snapname not in src.snapshots:
        raise die(f"snapshot '{snapname}' does not exist")
    source_conf = src.snapshots[snapname] if snapname else src.conf
    mountpoints: dict[str, dict[str, Any]] = {}
    newconf: dict[str, Any] = {}
    for opt, value in sorted(source_conf.items()):
        if re.fullmatch(r"unused\d+", opt) or opt in _NOT_CLONED:
            continue
        if guestconf.is_mountpoint_key(opt):
            mp = guestconf.parse_mp(opt, str(value))
            volid = str(mp["volume"])
            sid = storage or volid.split(":", 1)[0]
            ctx.check(f"/storage/{sid}", ["Datastore.AllocateSpace"])
            if full:
                if src.status == "running" and not snapname:
                    raise die("Cannot do full clones on a running container without snapshots")
            elif not is_template:
                raise die(f"Linked clone feature for '{volid}' is not available")
            mountpoints[opt] = mp
            newconf[opt] = value
        elif re.fullmatch(r"net\d+", opt):
            net = guestconf.parse_net(str(value))
            net["hwaddr"] = guestconf.random_mac()
            newconf[opt] = guestconf.print_net(net)
        else:
            newconf[opt] = value
    if target:
        raise die(f"can't clone CT to node '{target}' (CT uses local storage)")
    newconf["lock"] = "create"
    if p.get("hostname"):
        newconf["hostname"] = p["hostname"]
    if p.get("description"):
        newconf["description"] = guestconf.normalize_description(p["description"])
    return full, mountpoints, newconf


@route(
    "POST",
    "/nodes/{node}/lxc/{vmid}/clone",
    params=apidefs.LXC_CLONE,
    perm=Perm("/vms/{vmid}", ("VM.Clone",)),
    proxy=True,
)
def clone_vm(ctx: Ctx, p: dict[str, Any]) -> str:
    state = ctx.state
    node, vmid, newid = p["node"], p["vmid"], p["newid"]
    target = _check_clone_request(ctx, p)
    state.check_quorum()
    src = state.load_config(node, vmid)
    check_lock(src)
    state.check_vmid_unused(newid)
    src.conf["lock"] = "disk"
    newguest = Guest(vmid=newid, node=node, conf={"lock": "create"}, created_at=state.now())
    newguest.ssh_keys = src.ssh_keys  # a clone copies the root filesystem, keys included
    newguest.packages = src.packages
    state.guests[newid] = newguest

    def undo() -> None:
        src.conf.pop("lock", None)
        if state.guests.get(newid) is newguest:
            del state.guests[newid]

    try:
        full, mountpoints, newconf = _plan_clone(ctx, p, src, target)
        newguest.conf = newconf
    except ApiError:
        undo()
        raise
    state.mark_dirty()
    worker = _clone_worker(
        state,
        src,
        newguest,
        mountpoints=mountpoints,
        storage=p.get("storage"),
        full=full,
        pool=p.get("pool"),
        undo=undo,
    )
    return state.fork_worker(node, "vzclone", str(vmid), ctx.authuser, worker)


def _clone_worker(
    state: SimState,
    src: Guest,
    newguest: Guest,
    *,
    mountpoints: dict[str, dict[str, Any]],
    storage: str | None,
    full: Any,
    pool: str | None,
    undo: Callable[[], None],
) -> WorkerBody:
    node, newid = newguest.node, newguest.vmid

    def worker(w: WorkerContext) -> Worker:
        allocated: list[str] = []
        try:
            yield from w.work(0.2)
            for opt, mp in sorted(mountpoints.items()):
                volid = str(mp["volume"])
                vol = state.volume(node, volid)
                size = vol.size if vol else parse_size(str(mp.get("size", "4G"))) or 4 * GIB
                sid = storage or volid.split(":", 1)[0]
                kind = "full clone" if full else "linked clone"
                w.log(f"create {kind} of mount point {opt} ({volid})")
                newvol = state.alloc_disk(node, sid, newid, size)
                allocated.append(newvol)
                mp2 = dict(mp, volume=newvol, size=format_size(size))
                newguest.conf[opt] = guestconf.print_mp(opt, mp2)
            yield from w.work(0.8)
        except (TaskFailure, ApiError) as exc:
            free_volumes(state, node, allocated)
            undo()
            if isinstance(exc, InjectedFailure):
                raise
            text = exc.message if isinstance(exc, TaskFailure) else exc.message.rstrip("\n")
            raise TaskFailure(f"clone failed: {text}") from exc
        src.conf.pop("lock", None)
        newguest.conf.pop("lock", None)
        newguest.pool = pool
        state.mark_dirty()

    return worker


# -- resize, template ----------------------------------------------------------


@route(
    "PUT",
    "/nodes/{node}/lxc/{vmid}/resize",
    params=apidefs.LXC_RESIZE,
    perm=Perm("/vms/{vmid}", ("VM.Config.Disk",), any=True),
    proxy=True,
)
def resize_vm(ctx: Ctx, p: dict[str, Any]) -> str:
    state = ctx.state
    node, vmid, disk = p["node"], p["vmid"], p["disk"]
    sizestr = p["size"]
    ext = sizestr.startswith("+")
    request = parse_size(sizestr.lstrip("+"))
    if request is None:
        raise die("invalid size string")

    def load_and_check() -> tuple[Guest, dict[str, Any], str, int]:
        guest = state.load_config(node, vmid)
        check_lock(guest)
        check_ct_modify_config_perm(ctx, vmid, [disk])
        if p.get("digest") and p["digest"] != guestconf.digest(guest.conf, guest.snapshots):
            raise die("detected modified configuration - file changed by other user? Try again.")
        if disk not in guest.conf:
            raise die(f"disk '{disk}' does not exist")
        mp = guestconf.parse_mp(disk, str(guest.conf[disk]))
        volid = str(mp["volume"])
        vol = state.volume(node, volid)
        if vol is None:
            raise die(f"Could not determine current size of volume '{volid}'")
        ctx.check(f"/storage/{volid.split(':', 1)[0]}", ["Datastore.AllocateSpace"])
        newsize = vol.size + request if ext else request
        if newsize < vol.size:
            raise die("unable to shrink disk size")
        if newsize == vol.size:
            raise die("disk is already at specified size")
        return guest, mp, volid, newsize

    load_and_check()

    def worker(w: WorkerContext) -> Worker:
        yield from w.acquire_flock(vmid)
        guest, mp, volid, newsize = load_and_check()
        yield from w.work()
        vol = state.volume(node, volid)
        st = state.storage(node, volid.split(":", 1)[0])
        assert vol is not None
        grow = newsize - vol.size
        if grow > st.avail():
            raise die(
                f"lvextend 'pve/{volid.split(':', 1)[1]}' error:   Insufficient free space: "
                f"{grow // (4 * MIB)} extents needed, but only {st.avail() // (4 * MIB)} available"
            )
        vol.size = newsize
        mp["size"] = format_size(newsize)
        guest.conf[disk] = guestconf.print_mp(disk, mp)
        w.log(
            f"  Size of logical volume pve/{volid.split(':', 1)[1]} changed to {format_size(newsize)}."
        )
        w.log(f"  Logical volume pve/{volid.split(':', 1)[1]} successfully resized.")
        state.mark_dirty()

    return state.fork_worker(node, "resize", str(vmid), ctx.authuser, worker)


@route(
    "POST",
    "/nodes/{node}/lxc/{vmid}/template",
    params=apidefs.NODE_VMID,
    perm=Perm("/vms/{vmid}", ("VM.Allocate",)),
    proxy=True,
)
def template(ctx: Ctx, p: dict[str, Any]) -> None:
    state = ctx.state
    node, vmid = p["node"], p["vmid"]
    state.wait_flock(vmid)
    guest = state.load_config(node, vmid)
    check_lock(guest)
    if guest.snapshots:
        raise die("unable to create template, because CT contains snapshots")
    if int(guest.conf.get("template", 0) or 0):
        raise die("you can't convert a template to a template")
    if guest.status == "running":
        raise die("you can't convert a CT to template if the CT is running")

    def worker(w: WorkerContext) -> Worker:
        yield from w.work()
        g = state.load_config(node, vmid)
        for key in list(g.conf):
            if not guestconf.is_mountpoint_key(key):
                continue
            mp = guestconf.parse_mp(key, str(g.conf[key]))
            volid = str(mp["volume"])
            sid, _, volname = volid.partition(":")
            st = state.nodes[node].storages.get(sid)
            if st and volname in st.volumes and volname.startswith("vm-"):
                base = "base-" + volname[3:]
                st.volumes[base] = st.volumes.pop(volname)
                mp["volume"] = f"{sid}:{base}"
                g.conf[key] = guestconf.print_mp(key, mp)
                w.log(f'  Renamed "{volname}" to "{base}" in volume group "pve"')
        g.conf["template"] = 1
        state.mark_dirty()

    state.fork_worker(node, "vztemplate", str(vmid), ctx.authuser, worker)
    return None
