"""/version, /cluster/nextid, /cluster/resources, /cluster/status."""

from __future__ import annotations

from typing import Any

from pvesim import PVE_RELEASE, PVE_REPOID, PVE_VERSION, apidefs, metrics
from pvesim.api.common import resource_entry
from pvesim.errors import die, param_error
from pvesim.router import Ctx, Perm, route


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
    state = ctx.state
    kind = p.get("type")
    now = state.now()
    out: list[dict[str, Any]] = []
    if kind in (None, "vm"):
        for guest in sorted(state.guests.values(), key=lambda g: g.vmid):
            if ctx.check(f"/vms/{guest.vmid}", ["VM.Audit"], noerr=True):
                out.append(resource_entry(state, guest))
    if kind in (None, "node"):
        for node in state.nodes.values():
            if not ctx.check(f"/nodes/{node.name}", ["Sys.Audit"], noerr=True):
                continue
            entry: dict[str, Any] = {"id": f"node/{node.name}", "type": "node", "node": node.name}
            if node.name in state.faults.offline:
                entry.update({"status": "offline", "level": ""})
            else:
                use = metrics.node_usage(state, node, now)
                entry.update(
                    {
                        "status": "online",
                        "cpu": use["cpu"],
                        "maxcpu": use["maxcpu"],
                        "mem": use["mem"],
                        "maxmem": use["maxmem"],
                        "disk": use["rootfs_used"],
                        "maxdisk": use["rootfs_total"],
                        "uptime": use["uptime"],
                        "level": "",
                        "cgroup-mode": 2,
                    }
                )
            out.append(entry)
    if kind in (None, "storage"):
        for node in state.nodes.values():
            for st in node.storages.values():
                if not ctx.check_any(
                    f"/storage/{st.id}", ["Datastore.Audit", "Datastore.AllocateSpace"], noerr=True
                ):
                    continue
                entry = {
                    "id": f"storage/{node.name}/{st.id}",
                    "type": "storage",
                    "storage": st.id,
                    "node": node.name,
                    "plugintype": st.type,
                    "content": ",".join(sorted(st.content)),
                    "shared": st.shared,
                }
                if node.name in state.faults.offline:
                    entry["status"] = "unknown"
                else:
                    entry.update({"status": "available", "disk": st.used(), "maxdisk": st.total})
                out.append(entry)
    if kind in (None, "sdn"):
        for node in state.nodes.values():
            if ctx.check("/sdn/zones/localnetwork", ["SDN.Audit"], noerr=True):
                status = "unknown" if node.name in state.faults.offline else "ok"
                out.append(
                    {
                        "id": f"sdn/{node.name}/localnetwork",
                        "type": "sdn",
                        "sdn": "localnetwork",
                        "node": node.name,
                        "status": status,
                    }
                )
    return out


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
