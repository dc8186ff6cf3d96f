"""LXC containers: create, list, config, power, destroy, clone, resize, ...

Synchronous checks and their texts follow pve-container's API2/LXC*.pm:
what Proxmox checks before forking answers at once (500/400/403); what it
checks inside the worker gives a UPID and then a failed task.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import ipaddress
import re
from typing import Any

from pvesim import apidefs, catalog, guestconf, metrics
from pvesim.api.common import check_ct_modify_config_perm, ct_status
from pvesim.errors import ApiError, InjectedFailure, TaskFailure, die, param_error, perm_error
from pvesim.formats import format_size, parse_size
from pvesim.router import Ctx, Perm, route
from pvesim.schema import FormatError, split_list
from pvesim.state import GIB, Guest, SimState
from pvesim.tasks import Worker, WorkerBody, WorkerContext

MIB = 1 << 20
ROOT = "root@pam"
VM_AUDIT = Perm("/vms/{vmid}", ("VM.Audit",))
POWER = Perm("/vms/{vmid}", ("VM.PowerMgmt",))
CONFIG_PRIVS = (
    "VM.Config.Disk",
    "VM.Config.CPU",
    "VM.Config.Memory",
    "VM.Config.Network",
    "VM.Config.Options",
)


def check_lock(guest: Guest) -> None:
    lock = guest.conf.get("lock")
    if lock:
        raise die(f"CT is locked ({lock})")


def check_protection(guest: Guest, msg: str) -> None:
    if int(guest.conf.get("protection", 0) or 0):
        raise die(f"{msg} - protection mode enabled")


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


def _apply_option(conf: dict[str, Any], key: str, value: Any) -> None:
    """Store an option the way the config file holds it."""
    if re.fullmatch(r"net\d+", key):
        conf[key] = guestconf.normalize_net(str(value))
    elif key == "features":
        conf[key] = guestconf.print_features(str(value))
    elif key == "tags":
        tags = guestconf.normalize_tags(str(value))
        if tags:
            conf[key] = tags
        else:
            conf.pop(key, None)
    elif key == "description":
        conf[key] = guestconf.normalize_description(str(value))
    else:
        conf[key] = value


def _new_disk(value: str) -> tuple[str, int] | None:
    """``STORAGE:SIZE_GiB`` -> (storage, bytes) for volumes to allocate."""
    m = guestconf.NEW_DISK_RE.match(value)
    if not m or not m.group(1):
        return None
    return m.group(1), int(float(m.group(2)) * GIB)


def _alloc_mountpoint(state: SimState, node: str, vmid: int, key: str, value: str, log: Any) -> str:
    """create_disks for one mount point; returns the config string."""
    mp = guestconf.parse_mp(key, value)
    disk = _new_disk(str(mp["volume"]))
    if disk is None:
        return guestconf.print_mp(key, mp)
    sid, size = disk
    volid = state.alloc_disk(node, sid, vmid, size)
    if log:
        log(f'  Logical volume "{volid.split(":", 1)[1]}" created.')
        blocks = size // 4096
        log(f"Creating filesystem with {blocks} 4k blocks and {max(1, blocks // 4)} inodes")
    mp["volume"] = volid
    mp["size"] = format_size(size)
    return guestconf.print_mp(key, mp)


def _volumes_of(conf: dict[str, Any]) -> list[str]:
    vols = []
    for key, value in conf.items():
        if guestconf.is_mountpoint_key(key) or re.fullmatch(r"unused\d+", key):
            try:
                vol = (
                    guestconf.parse_mp(key, str(value))
                    if guestconf.is_mountpoint_key(key)
                    else {"volume": value}
                )
            except FormatError:
                continue
            if ":" in str(vol.get("volume", "")):
                vols.append(str(vol["volume"]))
    return vols


def _free_volumes(state: SimState, node: str, vols: list[str], log: Any = None) -> None:
    for volid in vols:
        if state.free_volume(node, volid) and log:
            log(f'  Logical volume "{volid.split(":", 1)[1]}" successfully removed.')


# -- create ----------------------------------------------------------------


@route("POST", "/nodes/{node}/lxc", params=apidefs.LXC_CREATE, proxy=True)
def create_vm(ctx: Ctx, p: dict[str, Any]) -> str:
    state = ctx.state
    state.check_quorum()
    node, vmid = p["node"], p["vmid"]
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
    ostemplate = p["ostemplate"]
    storage = p.get("storage", "local")
    extracted = {
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
    options = {k: v for k, v in p.items() if k not in extracted}
    check_ct_modify_config_perm(ctx, vmid, list(options), unprivileged)

    m = re.fullmatch(r"([a-z][a-z0-9\-_.]*[a-z0-9]):(.+)", ostemplate, re.I)
    if m:
        state.storage(node, m.group(1))
        ctx.check_any(f"/storage/{m.group(1)}", ["Datastore.AllocateSpace", "Datastore.Audit"])
    elif ctx.authuser != ROOT:
        raise die("Only root can pass arbitrary filesystem paths.")

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

    conf: dict[str, Any] = {}
    for key, value in plain.items():
        _apply_option(conf, key, value)
    if unprivileged:
        conf["unprivileged"] = 1

    # create_and_lock_config: the CT exists at once, holding only the lock.
    guest = Guest(vmid=vmid, node=node, conf={"lock": "create"}, created_at=state.now())
    state.guests[vmid] = guest
    state.mark_dirty()
    start_after = bool(p.get("start"))

    def worker(w: WorkerContext) -> Worker:
        allocated: list[str] = []
        try:
            yield from w.work(0.1)
            final = dict(conf)
            for key in sorted(mp_param, key=lambda k: (k != "rootfs", k)):
                final[key] = _alloc_mountpoint(state, node, vmid, key, mp_param[key], w.log)
                allocated.append(str(guestconf.parse_mp(key, final[key])["volume"]))
            if state.volume(node, ostemplate) is None:
                raise die(f"volume '{ostemplate}' does not exist")
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
                fp = base64.b64encode(
                    hashlib.sha256(f"{vmid}:{kind}:{w.task.upid}".encode()).digest()
                )
                w.log(f"done: SHA256:{fp.decode().rstrip('=')} root@{final['hostname']}")
            yield from w.work(0.1)
        except (TaskFailure, ApiError) as exc:
            _free_volumes(state, node, allocated)
            if state.guests.get(vmid) is guest:
                del state.guests[vmid]
            if isinstance(exc, InjectedFailure):
                raise
            text = exc.message if isinstance(exc, TaskFailure) else exc.message.rstrip("\n")
            raise TaskFailure(f"unable to create CT {vmid} - {text}") from exc
        guest.conf = final
        guest.pool = pool
        if pool:
            state.pools.add(pool)
        w.release_flock(vmid)
        if start_after:
            yield from _start_steps(w, node, vmid, skiplock=False)

    return state.fork_worker(node, "vzcreate", str(vmid), ctx.authuser, worker, flock=vmid)


# -- list, status, config ----------------------------------------------------


@route("GET", "/nodes/{node}/lxc", params=apidefs.NODE_ONLY, proxy=True)
def vmlist(ctx: Ctx, p: dict[str, Any]) -> list[dict[str, Any]]:
    state = ctx.state
    return [
        ct_status(state, g)
        for g in state.guests_on(p["node"])
        if g.type == "lxc" and ctx.check(f"/vms/{g.vmid}", ["VM.Audit"], noerr=True)
    ]


@route(
    "GET",
    "/nodes/{node}/lxc/{vmid}/status/current",
    params=apidefs.NODE_VMID,
    perm=VM_AUDIT,
    proxy=True,
)
def vm_status(ctx: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    guest = ctx.state.load_config(p["node"], p["vmid"])
    data = ct_status(ctx.state, guest)
    data["ha"] = {"managed": 0}
    return data


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
                conf[opt] = _alloc_mountpoint(state, node, vmid, opt, str(value), None)
            except TaskFailure as exc:
                raise die(exc.message) from exc
            continue
        _apply_option(conf, opt, value)
    guest.conf = conf
    state.mark_dirty()


# -- power -----------------------------------------------------------------


def _start_steps(w: WorkerContext, node: str, vmid: int, skiplock: bool) -> Worker:
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
                    str(net["hwaddr"]), net.get("bridge"), state.leases, _static_ips(state)
                )


NET_KEY = re.compile(r"net\d+")


@functools.lru_cache(maxsize=4096)
def _static_ip(value: str) -> str | None:
    """The static address of one netN value (cached: every start scans all guests)."""
    try:
        ip = guestconf.parse_net(value).get("ip")
    except FormatError:
        return None
    if ip and "/" in str(ip):
        return str(ip).split("/", 1)[0]
    return None


def _static_ips(state: SimState) -> set[str]:
    out = set()
    for g in state.guests.values():
        for key, value in g.conf.items():
            if NET_KEY.fullmatch(key) and (ip := _static_ip(str(value))):
                out.add(ip)
    return out


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
        yield from _start_steps(w, node, vmid, skiplock)

    return state.fork_worker(node, "vzstart", str(vmid), ctx.authuser, worker)


def _stop_worker(node: str, vmid: int, skiplock: bool, check_all_locks: bool) -> WorkerBody:
    def worker(w: WorkerContext) -> Worker:
        state = w.state
        guest = state.load_config(node, vmid)
        lock = guest.conf.get("lock")
        if lock and (check_all_locks or (not skiplock and lock != "mounted")):
            raise die(f"CT is locked ({lock})")
        yield from w.work()
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
        guest = state.load_config(node, vmid)
        guest.started_at = state.now()
        guest.pid = state.next_pid()
        state.mark_dirty()

    return state.fork_worker(node, "vzreboot", str(vmid), ctx.authuser, worker)


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
            g.status, g.started_at, g.pid = "stopped", None, None
        g.conf["lock"] = "destroyed"
        vols = _volumes_of(g.conf)
        if unreferenced:
            for st in state.nodes[node].storages.values():
                for volname, vol in st.volumes.items():
                    volid = f"{st.id}:{volname}"
                    if vol.vmid == vmid and volid not in vols:
                        vols.append(volid)
        _free_volumes(state, node, vols, w.log)
        state.remove_vm_access(vmid)
        if purge:
            w.log(f"purging CT {vmid} from related configurations..")
        del state.guests[vmid]
        state.mark_dirty()

    return state.fork_worker(node, "vzdestroy", str(vmid), ctx.authuser, worker)


# -- interfaces, rrddata -----------------------------------------------------


def _ll6(mac: str) -> str:
    octets = [int(x, 16) for x in mac.split(":")]
    octets[0] ^= 0x02
    eui = [*octets[:3], 0xFF, 0xFE, *octets[3:]]
    groups = [f"{(eui[i] << 8) | eui[i + 1]:x}" for i in range(0, 8, 2)]
    return str(ipaddress.IPv6Address("fe80::" + ":".join(groups)))


@route(
    "GET",
    "/nodes/{node}/lxc/{vmid}/interfaces",
    params=apidefs.NODE_VMID,
    perm=VM_AUDIT,
    proxy=True,
)
def interfaces(ctx: Ctx, p: dict[str, Any]) -> list[dict[str, Any]] | None:
    state = ctx.state
    guest = state.load_config(p["node"], p["vmid"])
    if guest.status != "running":
        return None
    out: list[dict[str, Any]] = [
        {
            "name": "lo",
            "hwaddr": "00:00:00:00:00:00",
            "hardware-address": "00:00:00:00:00:00",
            "inet": "127.0.0.1/8",
            "inet6": "::1/128",
            "ip-addresses": [
                {"ip-address": "127.0.0.1", "ip-address-type": "inet", "prefix": 8},
                {"ip-address": "::1", "ip-address-type": "inet6", "prefix": 128},
            ],
        }
    ]
    taken = _static_ips(state)
    for key in sorted(
        (k for k in guest.conf if re.fullmatch(r"net\d+", k)), key=lambda k: int(k[3:])
    ):
        net = guestconf.parse_net(str(guest.conf[key]))
        mac = str(net.get("hwaddr", "")).lower()
        entry: dict[str, Any] = {
            "name": net.get("name", key),
            "hwaddr": mac,
            "hardware-address": mac,
        }
        addrs: list[dict[str, Any]] = []
        ip = net.get("ip")
        if ip == "dhcp" and mac:
            addr, prefix = state.dhcp.address_for(mac, net.get("bridge"), state.leases, taken)
            entry["inet"] = f"{addr}/{prefix}"
            addrs.append({"ip-address": addr, "ip-address-type": "inet", "prefix": prefix})
        elif ip and "/" in str(ip):
            addr, prefix_s = str(ip).split("/", 1)
            entry["inet"] = str(ip)
            addrs.append({"ip-address": addr, "ip-address-type": "inet", "prefix": int(prefix_s)})
        ip6 = net.get("ip6")
        if ip6 and "/" in str(ip6):
            addr6, prefix6 = str(ip6).split("/", 1)
            entry["inet6"] = str(ip6)
            addrs.append({"ip-address": addr6, "ip-address-type": "inet6", "prefix": int(prefix6)})
        elif mac:
            ll = _ll6(mac)
            entry["inet6"] = f"{ll}/64"
            addrs.append({"ip-address": ll, "ip-address-type": "inet6", "prefix": 64})
        entry["ip-addresses"] = addrs
        out.append(entry)
    return out


@route("GET", "/nodes/{node}/lxc/{vmid}/rrddata", params=apidefs.LXC_RRDDATA, perm=VM_AUDIT)
def rrddata(ctx: Ctx, p: dict[str, Any]) -> list[dict[str, Any]]:
    state = ctx.state
    guest = state.guests.get(p["vmid"])
    if guest is None or guest.node not in state.nodes:
        return []
    return metrics.rrd_points(
        guest, state.nodes[guest.node], p["timeframe"], p.get("cf", "AVERAGE"), state.now()
    )


# -- clone, resize, template -------------------------------------------------


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
    state.check_quorum()
    src = state.load_config(node, vmid)
    check_lock(src)
    state.check_vmid_unused(newid)
    src.conf["lock"] = "disk"
    newguest = Guest(vmid=newid, node=node, conf={"lock": "create"}, created_at=state.now())
    state.guests[newid] = newguest

    def undo() -> None:
        src.conf.pop("lock", None)
        if state.guests.get(newid) is newguest:
            del state.guests[newid]

    try:
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
            if re.fullmatch(r"unused\d+", opt) or opt in (
                "lock",
                "template",
                "parent",
                "snaptime",
                "snapstate",
            ):
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
        newguest.conf = newconf
    except ApiError:
        undo()
        raise
    state.mark_dirty()

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
            _free_volumes(state, node, allocated)
            undo()
            if isinstance(exc, InjectedFailure):
                raise
            text = exc.message if isinstance(exc, TaskFailure) else exc.message.rstrip("\n")
            raise TaskFailure(f"clone failed: {text}") from exc
        src.conf.pop("lock", None)
        newguest.conf.pop("lock", None)
        newguest.pool = pool
        state.mark_dirty()

    return state.fork_worker(node, "vzclone", str(vmid), ctx.authuser, worker)


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


# -- directory indexes (existence checks clients use) ------------------------


@route("GET", "/nodes/{node}/lxc/{vmid}", params=apidefs.NODE_VMID, proxy=True)
def vmdiridx(ctx: Ctx, p: dict[str, Any]) -> list[dict[str, str]]:
    ctx.state.load_config(p["node"], p["vmid"])
    subdirs = (
        "config",
        "pending",
        "status",
        "vncproxy",
        "termproxy",
        "vncwebsocket",
        "spiceproxy",
        "migrate",
        "clone",
        "rrd",
        "rrddata",
        "firewall",
        "snapshot",
        "resize",
        "interfaces",
    )
    return [{"subdir": s} for s in subdirs]


@route("GET", "/nodes/{node}/lxc/{vmid}/status", params=apidefs.NODE_VMID, proxy=True)
def vmcmdidx(ctx: Ctx, p: dict[str, Any]) -> list[dict[str, str]]:
    ctx.state.load_config(p["node"], p["vmid"])
    return [
        {"subdir": s}
        for s in ("current", "start", "stop", "shutdown", "reboot", "suspend", "resume")
    ]
