"""Reading CTs: the list, current status, interfaces, rrddata and the directory indexes."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from pvesim import apidefs, guestconf, metrics
from pvesim.api.common import ct_status
from pvesim.api.lxc.shared import VM_AUDIT, static_ips
from pvesim.errors import die
from pvesim.router import Ctx, route

# -- list, status ------------------------------------------------------------


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
    taken = static_ips(state)
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


# Where pmxcfs keeps a guest's RRD (PVE 9); rrdcached is reached through its socket.
RRD_DIR = "/var/lib/rrdcached/db/pve-vm-9.0"
RRDCACHED = "unix:/var/run/rrdcached.sock"


@route("GET", "/nodes/{node}/lxc/{vmid}/rrddata", params=apidefs.LXC_RRDDATA, perm=VM_AUDIT)
def rrddata(ctx: Ctx, p: dict[str, Any]) -> list[dict[str, Any]]:
    """PVE::RRD::create_rrd_data("pve-vm-9.0/<vmid>"): no proxyto and no config check,
    so the node in the path is not looked at; a vmid without an RRD file is RRDs::fetch's
    error, as rrdcached's client reports it."""
    state = ctx.state
    guest = state.guests.get(p["vmid"])
    if guest is None or guest.node not in state.nodes:
        path = f"{RRD_DIR}/{p['vmid']}"
        raise die(
            f"RRD error: rrdcached@{RRDCACHED}: rrd_fetch_r failed: opening '{path}': "
            "No such file or directory"
        )
    return metrics.rrd_points(
        guest, state.nodes[guest.node], p["timeframe"], p.get("cf", "AVERAGE"), state.now()
    )


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
