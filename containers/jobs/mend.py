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

from containers.models import ContainerStatus, JobKind, StepState
from containers.proxmox import ProxmoxUnavailable
from containers.tags import config_changes

from .access import run_access_steps
from .kind import JobKindBase, register

if TYPE_CHECKING:
    from .context import JobContext


@register
class MendJob(JobKindBase):
    name = JobKind.MEND
    verb = "Mending"
    steps = (
        ("config", "Put back the portal's name, address, resources and tags"),
        ("access_group", "Update the directory access group"),
        ("realm_sync", "Sync the Proxmox LDAP realm (new users)"),
        ("proxmox_acl", "Update access in Proxmox"),
    )
    start_from = (ContainerStatus.RUNNING, ContainerStatus.STOPPED, ContainerStatus.ERROR)
    retry_from = start_from
    permission = "mend"  # staff (and the reconciler)

    def run(self, ctx: JobContext) -> dict[str, Any]:
        return _mend(ctx)

    def undo(self, ctx: JobContext) -> str:
        return "Proxmox keeps the values it had; the next reconcile reports them again"


def _mend(ctx: JobContext) -> dict[str, Any]:
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
            return StepState.SKIPPED
        ctx.client.update_config(ctx.node, c.vmid, digest=current.get("digest"), **changes)
        changed.extend(sorted(changes))
        ctx.log("put back " + ", ".join(f"{k}={v}" for k, v in sorted(changes.items())))
        return None

    ctx.run_step("config", config)
    run_access_steps(ctx)
    return {"changed": changed}
