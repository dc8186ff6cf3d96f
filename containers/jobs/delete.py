"""The `delete` job: revoke access, stop and destroy the CT, release its name and addresses."""

from __future__ import annotations

from typing import Any

from containers import services
from containers.models import Container, ContainerStatus, Job, JobKind, LogLevel, StepState
from containers.pool import claim as pool_claim
from containers.proxmox import ProxmoxError, ProxmoxNotFound
from containers.tags import is_ours

from . import access, wazuh
from .context import JobContext
from .kind import JobKindBase, pending, register
from .steps import config_or_none, gateway_step, read_state, wait_unlocked


@register
class DeleteJob(JobKindBase):
    name = JobKind.DELETE
    verb = "Deleting"
    steps = (
        ("revoke", "Revoke access in Proxmox"),
        ("access_group", "Remove the directory access group"),
        ("stop", "Stop the container"),
        ("destroy", "Destroy the container and its disks"),
        ("release", "Release its name and addresses"),
        ("gateway", "Remove its name and ports from the gateway"),
    )
    retry_from = (ContainerStatus.ERROR, ContainerStatus.DELETING)
    permission = "delete"

    @classmethod
    def plan(
        cls, params: dict[str, Any] | None = None, container: Container | None = None
    ) -> list[dict[str, Any]]:
        # Its Wazuh agent's removal comes after the release (a running agent whose key is
        # deleted would enrol again) and before the gateway (whose failure must not skip
        # it); only if the site has a manager and the portal enrolled an agent.
        at = [name for name, _ in cls.steps].index("release") + 1
        return pending((*cls.steps[:at], *wazuh.delete_steps(container), *cls.steps[at:]))

    def retrying(self, job: Job, container: Container) -> None:
        # The same row lock as container_delete: a route or port change under way ends first.
        services.lock_for_delete(container)
        services.require_status(container, self.retry_from, f"retry a {self.name} job of")

    def retried(self, container: Container) -> None:
        services.container_set_status(container=container, to=ContainerStatus.DELETING)

    def run(self, ctx: JobContext) -> dict[str, Any]:
        c = ctx.container
        services.container_set_status(container=c, to=ContainerStatus.DELETING)
        gone = {"value": False}

        def stop(st: dict[str, Any]) -> str | None:
            config = config_or_none(ctx)
            if config is None:
                ctx.log(f"CT {c.vmid} is not on Proxmox (already gone)")
                gone["value"] = True
                return StepState.SKIPPED
            if not is_ours(config, c):
                ctx.log(
                    f"CT {c.vmid} on Proxmox is not this container; leaving it alone",
                    level=LogLevel.WARNING,
                )
                gone["value"] = True
                return StepState.SKIPPED
            if config.get("lock"):
                wait_unlocked(ctx, lock=str(config["lock"]))
            if read_state(ctx) != "running":
                return StepState.SKIPPED
            try:
                ctx.wait(ctx.client.stop(ctx.node, c.vmid))
            except ProxmoxError as exc:
                if "not running" not in exc.message:
                    raise
            return None

        def destroy(st: dict[str, Any]) -> str | None:
            if gone["value"]:
                return StepState.SKIPPED
            try:
                ctx.wait(ctx.client.delete_container(ctx.node, c.vmid, purge=True, force=True))
            except ProxmoxNotFound:
                ctx.log("already gone")
            return None

        def release(st: dict[str, Any]) -> None:
            services.container_set_status(container=c, to=ContainerStatus.DELETED)
            ctx.log(f"released VMID {c.vmid}, {c.ip}, {c.mac} and the name {c.hostname}")
            # A failed claim (its undo could not reach Proxmox) still holds its member.
            if settled := pool_claim.claim_settle(c):
                ctx.log(settled)

        ctx.run_step("revoke", lambda st: access.proxmox_acl_revoke_all(ctx, st))
        ctx.run_step("access_group", lambda st: access.access_group_remove(ctx, st))
        ctx.run_step("stop", stop)
        ctx.run_step("destroy", destroy)
        ctx.run_step("release", release)
        wazuh.remove_step(ctx)
        gateway_step(ctx)
        return {"vmid": c.vmid}

    def undo(self, ctx: JobContext) -> str:
        if ctx.container.status == ContainerStatus.DELETED:
            # Only the gateway step can fail after the release: the container is gone.
            return (
                "the container is deleted; the gateway drops its name at its next successful apply"
            )
        services.container_set_status(
            container=ctx.container,
            to=ContainerStatus.ERROR,
            message="the last job failed; see its log",
        )
        return "the container is marked error; deleting it again retries"
