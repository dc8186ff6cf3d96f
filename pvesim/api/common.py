"""Helpers shared by the handlers: status records and config permissions."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pvesim import metrics
from pvesim.errors import perm_error

if TYPE_CHECKING:
    from pvesim.router import Ctx
    from pvesim.state import Guest, SimState


def guest_name(guest: Guest) -> str:
    if guest.type == "qemu":
        return str(guest.conf.get("name", f"VM{guest.vmid}"))
    return str(guest.conf.get("hostname", f"CT{guest.vmid}"))


def ct_status(state: SimState, guest: Guest) -> dict[str, Any]:
    """PVE::LXC::vmstatus for one CT (GET status/current and the lxc list)."""
    node = state.nodes[guest.node]
    use = metrics.guest_usage(guest, node, state.now())
    data: dict[str, Any] = {
        "vmid": guest.vmid,
        "type": guest.type,
        "name": guest_name(guest),
        "status": guest.status,
        "cpus": use["cpus"],
        "cpu": use["cpu"],
        "mem": use["mem"],
        "maxmem": use["maxmem"],
        "swap": use["swap"],
        "maxswap": use["maxswap"],
        "disk": use["disk"],
        "maxdisk": use["maxdisk"],
        "uptime": use["uptime"],
        "netin": use["netin"],
        "netout": use["netout"],
        "diskread": use["diskread"],
        "diskwrite": use["diskwrite"],
        "pressurecpusome": use["pressurecpusome"],
        "pressurecpufull": use["pressurecpufull"],
        "pressureiosome": use["pressureiosome"],
        "pressureiofull": use["pressureiofull"],
        "pressurememorysome": use["pressurememorysome"],
        "pressurememoryfull": use["pressurememoryfull"],
    }
    if guest.status == "running" and guest.pid:
        data["pid"] = guest.pid
    for key in ("lock", "tags"):
        if guest.conf.get(key):
            data[key] = guest.conf[key]
    if int(guest.conf.get("template", 0) or 0):
        data["template"] = 1
    return data


def resource_entry(state: SimState, guest: Guest) -> dict[str, Any]:
    """One guest in /cluster/resources (pve-manager API2Tools::extract_vm_stats).

    PVE 9 broadcasts every guest under `pve-vm-9.0/<vmid>`, whose `memhost` column
    extract_vm_stats copies into CTs' entries too (the schema says "for types 'qemu'").
    `pool` is the caller's to remove (it needs Pool.Audit)."""
    node = state.nodes.get(guest.node)
    entry: dict[str, Any] = {
        "id": f"{guest.type}/{guest.vmid}",
        "type": guest.type,
        "vmid": guest.vmid,
        "node": guest.node,
        "name": guest_name(guest),
        "template": int(guest.conf.get("template", 0) or 0),
    }
    if node is None:
        entry["status"] = "unknown"
        return entry
    lim = metrics.guest_limits(guest, node)
    if guest.node in state.faults.offline:
        # pmxcfs still knows the guest; the stale status is unknown.
        entry.update(
            {
                "status": "unknown",
                "maxcpu": lim["cpus"],
                "maxmem": lim["maxmem"],
                "maxdisk": lim["maxdisk"],
            }
        )
    else:
        use = metrics.guest_usage(guest, node, state.now())
        entry.update(
            {
                "status": guest.status,
                "maxcpu": use["cpus"],
                "cpu": use["cpu"],
                "maxmem": use["maxmem"],
                "mem": use["mem"],
                "memhost": use["memhost"],
                "maxdisk": use["maxdisk"],
                "disk": use["disk"],
                "uptime": use["uptime"],
                "netin": use["netin"],
                "netout": use["netout"],
                "diskread": use["diskread"],
                "diskwrite": use["diskwrite"],
            }
        )
    for key in ("tags", "lock"):
        if guest.conf.get(key):
            entry[key] = guest.conf[key]
    if guest.pool:
        entry["pool"] = guest.pool
    return entry


# Which privilege changing an option needs (PVE::LXC::check_ct_modify_config_perm).
_OPTION_PRIVS = {
    "cores": "VM.Config.CPU",
    "cpulimit": "VM.Config.CPU",
    "cpuunits": "VM.Config.CPU",
    "memory": "VM.Config.Memory",
    "swap": "VM.Config.Memory",
}


def _priv_for(opt: str) -> str:
    if opt in _OPTION_PRIVS:
        return _OPTION_PRIVS[opt]
    if opt == "rootfs" or re.fullmatch(r"(mp|unused|dev)\d+", opt):
        return "VM.Config.Disk"
    if re.fullmatch(r"net\d+", opt) or opt in ("nameserver", "searchdomain", "hostname"):
        return "VM.Config.Network"
    return "VM.Config.Options"


def check_ct_modify_config_perm(
    ctx: Ctx, vmid: int, options: list[str], unprivileged: bool | int | None = True
) -> None:
    path = f"/vms/{vmid}"
    for opt in options:
        if opt in ("node", "vmid", "digest", "delete", "revert"):
            continue
        if opt == "features" and not unprivileged and ctx.authuser != "root@pam":
            raise perm_error(
                "changing feature flags for privileged container is only allowed for root@pam"
            )
        ctx.check(path, [_priv_for(opt)])
