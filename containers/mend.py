"""The `mend` job: put the portal's values back on a CT, or take in an adopted one.

The reconciler queues it when a CT's hostname, MAC, cores, memory or swap differ from
the portal's record (the portal owns them: DNS, the DHCP reservation and the quota
depend on them); an operator's *adopt* queues it to tag and address a CT the portal
takes in. The config step writes only what differs, with the config's digest, so a
change made at the same moment by someone else makes the step fail and retry rather
than be overwritten unseen. The access steps then make the directory group and the
Proxmox grants match the owner and collaborators.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from auth import access

from .proxmox import ProxmoxUnavailable
from .tags import config_changes

if TYPE_CHECKING:
    from .jobs import JobContext


def run_mend_job(ctx: JobContext) -> dict[str, Any]:
    c = ctx.container
    changed: list[str] = []

    def config(st: dict[str, Any]) -> str | None:
        current = ctx.client.container_config(ctx.node, c.vmid)
        if current.get("lock"):
            # A backup or migration holds it: try again later rather than fight it.
            raise ProxmoxUnavailable(f"CT {c.vmid} is locked ({current['lock']})")
        changes = config_changes(c, current)
        if not changes:
            ctx.log("Proxmox already holds the portal's values")
            return "skipped"
        ctx.client.update_config(ctx.node, c.vmid, digest=current.get("digest"), **changes)
        changed.extend(sorted(changes))
        ctx.log("put back " + ", ".join(f"{k}={v}" for k, v in sorted(changes.items())))
        return None

    ctx.run_step("config", config)
    ctx.run_step("access_group", lambda st: access.access_group_sync(ctx, st))
    ctx.run_step("realm_sync", lambda st: access.realm_sync_step(ctx, st))
    ctx.run_step("proxmox_acl", lambda st: access.proxmox_acl_sync(ctx, st))
    return {"changed": changed}


def undo_mend(ctx: JobContext) -> str:
    return "Proxmox keeps the values it had; the next reconcile reports them again"
