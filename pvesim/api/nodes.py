"""/nodes, node status, storages, storage content and the appliance index."""

from __future__ import annotations

from typing import Any

from pvesim import PVE_REPOID, PVE_VERSION, apidefs, catalog, metrics
from pvesim.errors import die, param_error
from pvesim.router import Ctx, Perm, route
from pvesim.schema import split_list
from pvesim.state import Volume
from pvesim.tasks import Worker, WorkerContext

KERNEL = "6.14.11-2-pve"


@route("GET", "/nodes", params=apidefs.NO_PARAMS)
def nodes_index(ctx: Ctx, p: dict[str, Any]) -> list[dict[str, Any]]:
    state = ctx.state
    now = state.now()
    out = []
    for node in state.nodes.values():
        entry: dict[str, Any] = {"node": node.name, "id": f"node/{node.name}", "type": "node"}
        if node.name in state.faults.offline:
            entry["status"] = "offline"
        else:
            entry.update(
                {
                    "status": "online",
                    "level": "",
                    "ssl_fingerprint": getattr(state, "ssl_fingerprint", ""),
                }
            )
            if ctx.check(f"/nodes/{node.name}", ["Sys.Audit"], noerr=True):
                use = metrics.node_usage(state, node, now)
                entry.update(
                    {
                        "cpu": use["cpu"],
                        "maxcpu": use["maxcpu"],
                        "mem": use["mem"],
                        "maxmem": use["maxmem"],
                        "disk": use["rootfs_used"],
                        "maxdisk": use["rootfs_total"],
                        "uptime": use["uptime"],
                    }
                )
        out.append(entry)
    return out


@route(
    "GET",
    "/nodes/{node}/status",
    params=apidefs.NODE_ONLY,
    perm=Perm("/nodes/{node}", ("Sys.Audit",)),
    proxy=True,
)
def node_status(ctx: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    state = ctx.state
    node = state.node(p["node"])
    use = metrics.node_usage(state, node, state.now())
    mem_used = use["mem"]
    return {
        "cpu": use["cpu"],
        "wait": 0.0004,
        "idle": 0,
        "uptime": use["uptime"],
        "loadavg": use["loadavg"],
        "kversion": f"Linux {KERNEL} #1 SMP PREEMPT_DYNAMIC PMX {KERNEL} x86_64",
        "pveversion": f"pve-manager/{PVE_VERSION}/{PVE_REPOID}",
        "cpuinfo": {
            "model": "AMD EPYC 7313P 16-Core Processor",
            "cpus": node.cpus,
            "cores": max(1, node.cpus // 2),
            "sockets": 1,
            "mhz": "2999.998",
            "hvm": "1",
            "user_hz": 100,
            "flags": "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov",
        },
        "memory": {
            "total": node.memory,
            "used": mem_used,
            "free": node.memory - mem_used,
            "available": node.memory - mem_used,
        },
        "swap": {
            "total": use["swap_total"],
            "used": use["swap_used"],
            "free": use["swap_total"] - use["swap_used"],
        },
        "rootfs": {
            "total": use["rootfs_total"],
            "used": use["rootfs_used"],
            "free": use["rootfs_total"] - use["rootfs_used"],
            "avail": use["rootfs_total"] - use["rootfs_used"],
        },
        "ksm": {"shared": 0},
        "boot-info": {"mode": "efi", "secureboot": 0},
        "current-kernel": {
            "sysname": "Linux",
            "release": KERNEL,
            "version": f"#1 SMP PREEMPT_DYNAMIC PMX {KERNEL}",
            "machine": "x86_64",
        },
    }


def _storage_entry(st: Any) -> dict[str, Any]:
    used = st.used()
    return {
        "storage": st.id,
        "type": st.type,
        "content": ",".join(sorted(st.content)),
        "active": 1,
        "enabled": 1,
        "shared": st.shared,
        "total": st.total,
        "used": used,
        "avail": st.avail(),
        "used_fraction": round(used / st.total, 6) if st.total else 0,
    }


@route("GET", "/nodes/{node}/storage", params=apidefs.STORAGE_LIST, proxy=True)
def storage_index(ctx: Ctx, p: dict[str, Any]) -> list[dict[str, Any]]:
    state = ctx.state
    node = state.node(p["node"])
    wanted = set(split_list(p["content"])) if p.get("content") else None
    out = []
    for st in node.storages.values():
        if p.get("storage") and st.id != p["storage"]:
            continue
        if wanted and not wanted & set(st.content):
            continue
        if not ctx.check_any(
            f"/storage/{st.id}", ["Datastore.Audit", "Datastore.AllocateSpace"], noerr=True
        ):
            continue
        out.append(_storage_entry(st))
    return out


@route(
    "GET",
    "/nodes/{node}/storage/{storage}/content",
    params=apidefs.STORAGE_CONTENT,
    perm=Perm("/storage/{storage}", ("Datastore.Audit", "Datastore.AllocateSpace"), any=True),
    proxy=True,
)
def storage_content(ctx: Ctx, p: dict[str, Any]) -> list[dict[str, Any]]:
    state = ctx.state
    st = state.storage(p["node"], p["storage"])
    out = []
    for volname, vol in sorted(st.volumes.items()):
        if p.get("content") and vol.content != p["content"]:
            continue
        if p.get("vmid") is not None and vol.vmid != p["vmid"]:
            continue
        if vol.vmid is not None and not ctx.check(f"/vms/{vol.vmid}", ["VM.Audit"], noerr=True):
            continue
        entry: dict[str, Any] = {
            "volid": f"{st.id}:{volname}",
            "content": vol.content,
            "format": vol.format,
            "size": vol.size,
            "ctime": vol.ctime,
        }
        if vol.vmid is not None:
            entry["vmid"] = vol.vmid
        out.append(entry)
    return out


@route("GET", "/nodes/{node}/aplinfo", params=apidefs.NODE_ONLY, proxy=True)
def aplinfo(ctx: Ctx, p: dict[str, Any]) -> list[dict[str, Any]]:
    return catalog.appliances()


@route(
    "POST",
    "/nodes/{node}/aplinfo",
    params=apidefs.APLINFO_DOWNLOAD,
    perm=Perm("/storage/{storage}", ("Datastore.AllocateTemplate",)),
    proxy=True,
)
def apl_download(ctx: Ctx, p: dict[str, Any]) -> str:
    state = ctx.state
    node, template, sid = p["node"], p["template"], p["storage"]
    appliance = catalog.appliance(template)
    if appliance is None:
        raise param_error({"template": "no such template"})
    st = state.storage(node, sid)
    if "vztmpl" not in st.content:
        raise die(f"storage '{sid}' does not support templates")

    def worker(w: WorkerContext) -> Worker:
        target = f"/var/lib/vz/template/cache/{template}"
        w.log(f"starting template download from: {appliance['location']}")
        w.log(f"target file: {target}")
        yield from w.work()
        size = catalog.template_size(template)
        storage = w.state.storage(node, sid)
        if size > storage.avail():
            raise die(f"write to '{target}.tmp' failed - No space left on device")
        storage.volumes[f"vztmpl/{template}"] = Volume(
            size, None, catalog.template_format(template), "vztmpl", int(w.state.now())
        )
        w.log(f"{size} ({size >> 20}.00 MiB) bytes downloaded")
        w.log("calculating checksum...OK, checksum verified")
        w.log(f"download of '{appliance['location']}' to '{target}' finished")

    return state.fork_worker(node, "download", template, ctx.authuser, worker)
