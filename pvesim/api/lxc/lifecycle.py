"""A CT's life: create, read and update its config, destroy."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

from pvesim import apidefs, catalog, guestconf
from pvesim.api.common import check_ct_modify_config_perm
from pvesim.api.lxc.power import start_steps
from pvesim.api.lxc.shared import (
    CONFIG_PRIVS,
    ROOT,
    VM_AUDIT,
    alloc_mountpoint,
    apply_option,
    check_lock,
    check_protection,
    free_volumes,
    stop_guest_processes,
    volumes_of,
)
from pvesim.errors import ApiError, InjectedFailure, TaskFailure, die, param_error, perm_error
from pvesim.router import Ctx, Perm, route
from pvesim.schema import split_list
from pvesim.state import Guest, SimState
from pvesim.tasks import Worker, WorkerBody, WorkerContext

# Create parameters that are not config options.
_CREATE_ONLY = frozenset(
    {
        "node",
        "vmid",
        "ostemplate",
        "storage",
        "password",
        "ssh-public-keys",
        "pool",
        "start",
        "ha-managed",
        "force",
        "restore",
        "unique",
        "ignore-unpack-errors",
        "bwlimit",
        "unprivileged",
    }
)

# -- create ----------------------------------------------------------------


def _validate_ssh_keys(keys: str) -> None:
    for line in keys.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not re.search(
            r"(^|\s)(ssh-(rsa|dss|ed25519)|ecdsa-sha2-\S+|sk-\S+)\s+[A-Za-z0-9+/=]+", line
        ):
            raise die("SSH public key validation error")


def _storage_for_rootdir(ctx: Ctx, node: str, sid: str) -> None:
    st = ctx.state.storage(node, sid)
    if "rootdir" not in st.content:
        raise param_error({"storage": f"storage '{sid}' does not support container directories"})
    ctx.check(f"/storage/{sid}", ["Datastore.AllocateSpace"])


def _check_create(ctx: Ctx, p: dict[str, Any]) -> Any:
    """The checks before the options, in Proxmox's order; returns ``unprivileged``."""
    state = ctx.state
    vmid = p["vmid"]
    restore = p.get("restore")
    unprivileged = p.get("unprivileged")
    if restore:
        raise die(f"unable to restore CT {vmid} - backup restore is not simulated by pvesim")
    if unprivileged is None:
        unprivileged = 1  # pve-container 103068a: new CTs are unprivileged by default
    if not unprivileged:
        ctx.check("/", ["Sys.Modify"])
    state.check_vmid_unused(vmid)
    if p.get("ssh-public-keys") is not None:
        _validate_ssh_keys(p["ssh-public-keys"])
    pool = p.get("pool")
    if pool is not None and pool not in state.pools:
        raise die(f"pool '{pool}' does not exist")
    allowed = ctx.check(f"/vms/{vmid}", ["VM.Allocate"], noerr=True) or (
        pool is not None and ctx.check(f"/pool/{pool}", ["VM.Allocate"], noerr=True)
    )
    if not allowed:
        raise perm_error()
    return unprivileged


def _check_ostemplate(ctx: Ctx, node: str, ostemplate: str) -> None:
    m = re.fullmatch(r"([a-z][a-z0-9\-_.]*[a-z0-9]):(.+)", ostemplate, re.I)
    if m:
        ctx.state.storage(node, m.group(1))
        ctx.check_any(f"/storage/{m.group(1)}", ["Datastore.AllocateSpace", "Datastore.Audit"])
    elif ctx.authuser != ROOT:
        raise die("Only root can pass arbitrary filesystem paths.")


def _plan_mountpoints(
    ctx: Ctx, node: str, storage: str, options: dict[str, Any]
) -> tuple[dict[str, str], dict[str, Any]]:
    """Split the options into mount points (checked, rootfs defaulted) and the rest."""
    mp_param: dict[str, str] = {}
    plain: dict[str, Any] = {}
    for key, value in options.items():
        if guestconf.is_mountpoint_key(key):
            text = str(value)
            mp_param[key] = f"{storage}:{text}" if re.fullmatch(r"\d+(\.\d+)?", text) else text
        elif re.fullmatch(r"unused\d+", key):
            continue  # "ignoring 'unusedN', cannot create/restore with unused volume"
        else:
            plain[key] = value
    if mp_param and "rootfs" not in mp_param:
        raise die("mount points configured, but 'rootfs' not set - aborting")
    for key, value in mp_param.items():
        vol = str(guestconf.parse_mp(key, value)["volume"])
        if ":" not in vol:
            if ctx.authuser != ROOT:
                raise die("Only root can pass arbitrary filesystem paths.")
            continue
        _storage_for_rootdir(ctx, node, vol.split(":", 1)[0])
    if "rootfs" not in mp_param:
        _storage_for_rootdir(ctx, node, storage)
        mp_param["rootfs"] = f"{storage}:4"  # defaults to 4 GB
    return mp_param, plain


@route("POST", "/nodes/{node}/lxc", params=apidefs.LXC_CREATE, proxy=True)
def create_vm(ctx: Ctx, p: dict[str, Any]) -> str:
    state = ctx.state
    state.check_quorum()
    node, vmid = p["node"], p["vmid"]
    unprivileged = _check_create(ctx, p)
    ostemplate = p["ostemplate"]
    storage = p.get("storage", "local")
    options = {k: v for k, v in p.items() if k not in _CREATE_ONLY}
    check_ct_modify_config_perm(ctx, vmid, list(options), unprivileged)
    _check_ostemplate(ctx, node, ostemplate)
    mp_param, plain = _plan_mountpoints(ctx, node, storage, options)

    conf: dict[str, Any] = {}
    for key, value in plain.items():
        apply_option(conf, key, value)
    if unprivileged:
        conf["unprivileged"] = 1

    # create_and_lock_config: the CT exists at once, holding only the lock.
    guest = Guest(vmid=vmid, node=node, conf={"lock": "create"}, created_at=state.now())
    state.guests[vmid] = guest
    state.mark_dirty()
    worker = _create_worker(
        state,
        guest,
        ostemplate=ostemplate,
        conf=conf,
        mp_param=mp_param,
        pool=p.get("pool"),
        start_after=bool(p.get("start")),
        ssh_keys=p.get("ssh-public-keys"),
        packages=state.template_packages.get(ostemplate.rsplit("/", 1)[-1], ()),
    )
    return state.fork_worker(node, "vzcreate", str(vmid), ctx.authuser, worker, flock=vmid)


def _extract_template(
    w: WorkerContext, vmid: int, ostemplate: str, final: dict[str, Any]
) -> Worker:
    """Unpack the template and fill in what it decides (arch, ostype, ...) and host keys."""
    path = f"/var/lib/vz/template/cache/{ostemplate.rsplit('/', 1)[-1]}"
    w.log(f"extracting archive '{path}'")
    yield from w.work(0.8)
    size = catalog.template_size(ostemplate.rsplit("/", 1)[-1])
    w.log(f"Total bytes read: {size * 4} ({size * 4 >> 20}MiB, 241MiB/s)")
    w.log("Detected container architecture: amd64")
    final.setdefault("arch", "amd64")
    final.setdefault("ostype", catalog.ostype_for(ostemplate))
    final.setdefault("hostname", f"CT{vmid}")
    final.setdefault("memory", 512)
    final.setdefault("swap", 512)
    for kind in ("ecdsa", "ed25519", "rsa"):
        w.log(f"Creating SSH host key 'ssh_host_{kind}_key' - this may take some time ...")
        fp = base64.b64encode(hashlib.sha256(f"{vmid}:{kind}:{w.task.upid}".encode()).digest())
        w.log(f"done: SHA256:{fp.decode().rstrip('=')} root@{final['hostname']}")


def _create_worker(
    state: SimState,
    guest: Guest,
    *,
    ostemplate: str,
    conf: dict[str, Any],
    mp_param: dict[str, str],
    pool: str | None,
    start_after: bool,
    ssh_keys: str | None,
    packages: tuple[str, ...] = (),
) -> WorkerBody:
    node, vmid = guest.node, guest.vmid

    def worker(w: WorkerContext) -> Worker:
        allocated: list[str] = []
        try:
            yield from w.work(0.1)
            final = dict(conf)
            for key in sorted(mp_param, key=lambda k: (k != "rootfs", k)):
                final[key] = alloc_mountpoint(state, node, vmid, key, mp_param[key], w.log)
                allocated.append(str(guestconf.parse_mp(key, final[key])["volume"]))
            if state.volume(node, ostemplate) is None:
                raise die(f"volume '{ostemplate}' does not exist")
            yield from _extract_template(w, vmid, ostemplate, final)
            yield from w.work(0.1)
        except (TaskFailure, ApiError) as exc:
            free_volumes(state, node, allocated)
            if state.guests.get(vmid) is guest:
                del state.guests[vmid]
            if isinstance(exc, InjectedFailure):
                raise
            text = exc.message if isinstance(exc, TaskFailure) else exc.message.rstrip("\n")
            raise TaskFailure(f"unable to create CT {vmid} - {text}") from exc
        guest.conf = final
        guest.pool = pool
        guest.ssh_keys = ssh_keys
        guest.packages = packages
        if pool:
            state.pools.add(pool)
        w.release_flock(vmid)
        if start_after:
            yield from start_steps(w, node, vmid, skiplock=False)

    return worker


# -- config ----------------------------------------------------------------


@route(
    "GET",
    "/nodes/{node}/lxc/{vmid}/config",
    params=apidefs.LXC_CONFIG_GET,
    perm=VM_AUDIT,
    proxy=True,
)
def vm_config(ctx: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    if p.get("snapshot") and p.get("current"):
        msg = "cannot use 'snapshot' parameter with 'current'"
        raise param_error({"snapshot": msg, "current": msg})
    guest = ctx.state.load_config(p["node"], p["vmid"])
    if p.get("snapshot"):
        snap = guest.snapshots.get(p["snapshot"])
        if snap is None:
            raise die(f"snapshot '{p['snapshot']}' does not exist")
        data = guestconf.typed_config(snap)
    else:
        data = guestconf.typed_config(guest.conf)
    data["digest"] = guestconf.digest(guest.conf, guest.snapshots)
    return data


@route(
    "PUT",
    "/nodes/{node}/lxc/{vmid}/config",
    params=apidefs.LXC_UPDATE,
    perm=Perm("/vms/{vmid}", CONFIG_PRIVS, any=True),
    proxy=True,
)
def update_vm(ctx: Ctx, p: dict[str, Any]) -> None:
    state = ctx.state
    node, vmid = p["node"], p["vmid"]
    digest = p.get("digest")
    options = {k: v for k, v in p.items() if k not in ("node", "vmid", "digest")}
    if not options:
        raise die("no options specified")
    delete = split_list(options.pop("delete", "") or "")
    revert = split_list(options.pop("revert", "") or "")
    check_ct_modify_config_perm(ctx, vmid, delete + revert)
    for opt in revert:
        if opt not in apidefs.LXC_OPTIONS:
            raise param_error({"revert": f"unknown option '{opt}'"})
        if opt in options:
            raise param_error(
                {"revert": f"you can't use '-{opt}' and '-revert {opt}' at the same time"}
            )
    for opt in delete:
        if opt not in apidefs.LXC_OPTIONS:
            raise param_error({"delete": f"unknown option '{opt}'"})
        if opt in options:
            raise param_error(
                {"delete": f"you can't use '-{opt}' and -delete {opt}' at the same time"}
            )
        if opt in revert:
            raise param_error(
                {"delete": f"you can't use '-delete {opt}' and '-revert {opt}' at the same time"}
            )
    check_ct_modify_config_perm(ctx, vmid, list(options))
    state.check_quorum()
    state.wait_flock(vmid)
    guest = state.load_config(node, vmid)
    check_lock(guest)
    current = guestconf.digest(guest.conf, guest.snapshots)
    if digest and digest != current:
        raise die("detected modified configuration - file changed by other user? Try again.")
    conf = dict(guest.conf)
    for opt in delete:
        if opt in ("rootfs", "memory"):
            raise die(f"unable to delete required option '{opt}'")
        if opt == "unprivileged":
            raise die(f"unable to modify read-only option: '{opt}'")
        value = conf.pop(opt, None)
        if value is None:
            continue
        if re.fullmatch(r"mp\d+", opt):
            vol = str(guestconf.parse_mp(opt, str(value))["volume"])
            n = 0
            while f"unused{n}" in conf:
                n += 1
            conf[f"unused{n}"] = vol
        elif re.fullmatch(r"unused\d+", opt):
            state.free_volume(node, str(value))
    for opt, value in options.items():
        if opt == "unprivileged":
            raise die(f"unable to modify read-only option: '{opt}'")
        if re.fullmatch(r"mp\d+", opt) or opt == "rootfs":
            try:
                conf[opt] = alloc_mountpoint(state, node, vmid, opt, str(value), None)
            except TaskFailure as exc:
                raise die(exc.message) from exc
            continue
        apply_option(conf, opt, value)
    guest.conf = conf
    state.mark_dirty()


# -- destroy -----------------------------------------------------------------


@route(
    "DELETE",
    "/nodes/{node}/lxc/{vmid}",
    params=apidefs.LXC_DESTROY,
    perm=Perm("/vms/{vmid}", ("VM.Allocate",)),
    proxy=True,
)
def destroy_vm(ctx: Ctx, p: dict[str, Any]) -> str:
    state = ctx.state
    node, vmid = p["node"], p["vmid"]
    force, purge = bool(p.get("force")), bool(p.get("purge"))
    unreferenced = bool(p.get("destroy-unreferenced-disks"))
    guest = state.load_config(node, vmid)

    def early_checks(g: Guest) -> None:
        check_protection(g, f"can't remove CT {vmid}")
        check_lock(g)

    early_checks(guest)
    running_msg = f"unable to destroy CT {vmid} - container is running"
    if not force and guest.status == "running":
        raise die(running_msg)
    state.check_quorum()

    def worker(w: WorkerContext) -> Worker:
        yield from w.acquire_flock(vmid)
        g = state.load_config(node, vmid)
        early_checks(g)
        yield from w.work()
        g = state.load_config(node, vmid)
        if g.status == "running":
            if not force:
                raise die(running_msg)
            w.warn(f"forced to stop CT {vmid} before destroying!")
            yield from stop_guest_processes(w, vmid)
            g = state.load_config(node, vmid)
            g.status, g.started_at, g.pid = "stopped", None, None
        g.conf["lock"] = "destroyed"
        vols = volumes_of(g.conf)
        if unreferenced:
            for st in state.nodes[node].storages.values():
                for volname, vol in st.volumes.items():
                    volid = f"{st.id}:{volname}"
                    if vol.vmid == vmid and volid not in vols:
                        vols.append(volid)
        free_volumes(state, node, vols, w.log)
        state.remove_vm_access(vmid)
        if purge:
            w.log(f"purging CT {vmid} from related configurations..")
        del state.guests[vmid]
        state.mark_dirty()

    return state.fork_worker(node, "vzdestroy", str(vmid), ctx.authuser, worker)
