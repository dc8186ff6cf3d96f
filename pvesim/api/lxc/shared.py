"""What more than one LXC area uses: permissions, lock checks, volumes, addresses."""

from __future__ import annotations

import functools
import re
from typing import Any

from pvesim import guestconf
from pvesim.errors import die
from pvesim.formats import format_size
from pvesim.router import Perm
from pvesim.schema import FormatError
from pvesim.state import GIB, Guest, SimState
from pvesim.tasks import Worker, WorkerContext

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
NET_KEY = re.compile(r"net\d+")
GUEST_STOP_WAIT = 30.0  # seconds a stop waits for an emulated CT's processes to end


def check_lock(guest: Guest) -> None:
    lock = guest.conf.get("lock")
    if lock:
        raise die(f"CT is locked ({lock})")


def check_protection(guest: Guest, msg: str) -> None:
    if int(guest.conf.get("protection", 0) or 0):
        raise die(f"{msg} - protection mode enabled")


def apply_option(conf: dict[str, Any], key: str, value: Any) -> None:
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


def alloc_mountpoint(state: SimState, node: str, vmid: int, key: str, value: str, log: Any) -> str:
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


def volumes_of(conf: dict[str, Any]) -> list[str]:
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


def free_volumes(state: SimState, node: str, vols: list[str], log: Any = None) -> None:
    for volid in vols:
        if state.free_volume(node, volid) and log:
            log(f'  Logical volume "{volid.split(":", 1)[1]}" successfully removed.')


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


def static_ips(state: SimState) -> set[str]:
    out = set()
    for g in state.guests.values():
        for key, value in g.conf.items():
            if NET_KEY.fullmatch(key) and (ip := _static_ip(str(value))):
                out.add(ip)
    return out


def stop_guest_processes(w: WorkerContext, vmid: int) -> Worker:
    """With guest emulation: end the CT's sshd and units before the CT counts as stopped,
    as lxc-stop returns once the container's processes are gone. (A frozen clock does
    not wait: the processes end on their own a moment later.)"""
    emulator = w.state.guest_emulator
    if emulator is None:
        return
    emulator.request_stop(vmid)
    waited = 0.0
    while emulator.alive(vmid) and waited < GUEST_STOP_WAIT and not w.state.clock.manual:
        yield 0.05
        waited += 0.05
