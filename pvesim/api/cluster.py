"""/version, /cluster/nextid, /cluster/resources, /cluster/status."""

from __future__ import annotations

from typing import Any

from pvesim import PVE_RELEASE, PVE_REPOID, PVE_VERSION, apidefs, metrics
from pvesim.api.common import resource_entry
from pvesim.errors import die, param_error
from pvesim.router import Ctx, Perm, route
from pvesim.state import Node


@route("GET", "/version", params=apidefs.NO_PARAMS)
def version(ctx: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    return {"version": PVE_VERSION, "release": PVE_RELEASE, "repoid": PVE_REPOID}


@route("GET", "/cluster/nextid", params=apidefs.NEXTID)
def nextid(ctx: Ctx, p: dict[str, Any]) -> str:
    state = ctx.state
    vmid = p.get("vmid")
    if vmid is not None:
        if vmid in state.guests:
            raise param_error({"vmid": f"VM {vmid} already exists"})
        return str(vmid)
    # datacenter.cfg next-id defaults: lower 100, upper 1,000,000 (exclusive)
    for candidate in range(100, 1_000_000):
        if candidate not in state.guests:
            # Perl stringifies the hash key, so this is a JSON string.
            return str(candidate)
    raise die("unable to get any free VMID in range [100, 1000000]")


@route("GET", "/cluster/resources", params=apidefs.RESOURCES)
def resources(ctx: Ctx, p: dict[str, Any]) -> list[dict[str, Any]]:
    """pve-manager API2::Cluster `resources`: guests, then nodes, storages and SDN zones.

    Permissions are `user => 'all'`; each entry is filtered on its own privilege: guests
    on VM.Audit (their `pool` on Pool.Audit), storages on Datastore.Audit, SDN zones on
    SDN.Audit. Nodes are always listed, their figures only with Sys.Audit on the node."""
    kind = p.get("type")
    out: list[dict[str, Any]] = []
    if kind in (None, "vm"):
        out.extend(_guest_entries(ctx))
    if kind in (None, "node"):
        out.extend(_node_entry(ctx, node) for node in ctx.state.nodes.values())
    if kind in (None, "storage"):
        out.extend(_storage_entries(ctx))
    if kind in (None, "sdn"):
        out.extend(_sdn_entries(ctx))
    return out


def _guest_entries(ctx: Ctx) -> list[dict[str, Any]]:
    state = ctx.state
    out = []
    # `sort keys %$idlist`: Perl sorts the vmids as strings (1000 before 105).
    for vmid in sorted(state.guests, key=str):
        if not ctx.check(f"/vms/{vmid}", ["VM.Audit"], noerr=True):
            continue
        entry = resource_entry(state, state.guests[vmid])
        pool = entry.get("pool")
        if pool is not None and not ctx.check(f"/pool/{pool}", ["Pool.Audit"], noerr=True):
            del entry["pool"]
        out.append(entry)
    return out


def _node_entry(ctx: Ctx, node: Node) -> dict[str, Any]:
    """API2Tools::extract_node_stats (with `exclude_stats` without Sys.Audit)."""
    state = ctx.state
    audit = ctx.check(f"/nodes/{node.name}", ["Sys.Audit"], noerr=True)
    entry: dict[str, Any] = {"id": f"node/{node.name}", "node": node.name, "type": "node"}
    if node.name in state.faults.offline:
        entry.update({"status": "offline", "level": ""})
    else:
        entry.update({"status": "online", "level": ""})
        if audit:
            use = metrics.node_usage(state, node, state.now())
            entry.update(
                {
                    "uptime": use["uptime"],
                    "cpu": use["cpu"],
                    "mem": use["mem"],
                    "disk": use["rootfs_used"],
                    "maxcpu": use["maxcpu"],
                    "maxmem": use["maxmem"],
                    "maxdisk": use["rootfs_total"],
                }
            )
        entry["cgroup-mode"] = 2
    return entry


def _storage_entries(ctx: Ctx) -> list[dict[str, Any]]:
    """API2Tools::extract_storage_stats, one entry per storage and node (storage first)."""
    state = ctx.state
    out = []
    ids = sorted({sid for node in state.nodes.values() for sid in node.storages})
    for sid in ids:
        if not ctx.check(f"/storage/{sid}", ["Datastore.Audit"], noerr=True):
            continue
        for node in state.nodes.values():
            st = node.storages.get(sid)
            if st is None:
                continue
            entry: dict[str, Any] = {
                "id": f"storage/{node.name}/{sid}",
                "storage": sid,
                "node": node.name,
                "type": "storage",
                "plugintype": st.type,
                "status": "unknown",
                "shared": st.shared,
                "content": ",".join(sorted(st.content)),
            }
            if node.name not in state.faults.offline:
                entry.update({"maxdisk": st.total, "disk": st.used(), "status": "available"})
            out.append(entry)
    return out


def _sdn_entries(ctx: Ctx) -> list[dict[str, Any]]:
    state = ctx.state
    if not ctx.check("/sdn/zones/localnetwork", ["SDN.Audit"], noerr=True):
        return []
    return [
        {
            "id": f"sdn/{node.name}/localnetwork",
            "sdn": "localnetwork",
            "node": node.name,
            "type": "sdn",
            "status": "unknown" if node.name in state.faults.offline else "ok",
        }
        for node in sorted(state.nodes.values(), key=lambda n: n.name)
    ]


@route("GET", "/cluster/status", params=apidefs.NO_PARAMS, perm=Perm("/", ("Sys.Audit",)))
def cluster_status(ctx: Ctx, p: dict[str, Any]) -> list[dict[str, Any]]:
    state = ctx.state
    out: list[dict[str, Any]] = [
        {
            "type": "cluster",
            "id": "cluster",
            "name": state.config.cluster_name,
            "nodes": len(state.nodes),
            "quorate": 1 if state.faults.quorum else 0,
            "version": len(state.nodes) + 1,
        }
    ]
    first = next(iter(state.nodes))
    for node in state.nodes.values():
        out.append(
            {
                "type": "node",
                "id": f"node/{node.name}",
                "name": node.name,
                "ip": f"192.0.2.{10 + node.nodeid}",
                "local": 1 if node.name == first else 0,
                "nodeid": node.nodeid,
                "online": 0 if node.name in state.faults.offline else 1,
                "level": "",
            }
        )
    return out
