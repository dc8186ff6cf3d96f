"""The `create` job: make the CT on Proxmox, start it, grant access, publish it."""

from __future__ import annotations

from typing import Any

from containers import services
from containers.models import Container, ContainerStatus, Job, JobKind, LogLevel
from containers.pool import claim as pool_claim
from containers.proxmox import ProxmoxNotFound, VmidTaken
from containers.tags import is_ours, managed_tags
from portal.errors import ErrorCode, InvalidState, ResourceExhausted, UpstreamError

from . import access, claim, wazuh
from .context import JobContext
from .kind import JobKindBase, pending, register
from .steps import config_or_none, gateway_step, inspect, read_state, start_ct, wait_unlocked

MAX_VMID_RETRIES = 10


@register
class CreateJob(JobKindBase):
    name = JobKind.CREATE
    verb = "Creating"
    steps = (
        ("create", "Create the container on Proxmox"),
        ("start", "Start the container"),
        ("inspect", "Check its status and address"),
        ("access_group", "Create the directory access group"),
        ("realm_sync", "Sync the Proxmox LDAP realm (first container)"),
        ("proxmox_acl", "Grant the owner access in Proxmox"),
        ("gateway", "Publish its name and ports on the gateway"),
    )
    retry_from = (ContainerStatus.PENDING, ContainerStatus.ERROR)
    permission = "delete"  # the owner or staff

    @classmethod
    def plan(
        cls, params: dict[str, Any] | None = None, container: Container | None = None
    ) -> list[dict[str, Any]]:
        if pool_claim.is_claim(params):
            return claim.plan(container)  # a container taken from the warm pool
        # Last, its Wazuh agent's enrolment, if the site has a manager (containers/jobs/wazuh.py).
        return pending((*cls.steps, *wazuh.create_steps(container)))

    def check_retry(self, job: Job, container: Container) -> None:
        if container.status == ContainerStatus.DELETED:
            raise InvalidState(
                f"the failed create of {container.hostname} left nothing behind (it is deleted); "
                "create the container again instead",
            )

    def run(self, ctx: JobContext) -> dict[str, Any]:
        if pool_claim.is_claim(ctx.job.params):
            return claim.run(ctx)
        c = ctx.container
        services.container_set_status(container=c, to=ContainerStatus.PROVISIONING)
        ctx.run_step("create", lambda st: _create_ct(ctx, st))
        ctx.run_step("start", lambda st: start_ct(ctx, st))
        ctx.run_step("inspect", lambda st: inspect(ctx, st))
        ctx.run_step("access_group", lambda st: access.access_group_sync(ctx, st))
        ctx.run_step("realm_sync", lambda st: access.realm_sync_step(ctx, st))
        ctx.run_step("proxmox_acl", lambda st: access.proxmox_acl_sync(ctx, st))
        gateway_step(ctx)
        wazuh.enrol_step(ctx)
        services.container_set_status(container=c, to=ContainerStatus.RUNNING)
        return {"vmid": c.vmid, "node": ctx.node, "ip": c.ip, "mac": c.mac}

    def undo(self, ctx: JobContext) -> str:
        """Remove what a failed create made, and release only what Proxmox said is not there.

        Proxmox may have carried out a request whose answer never came (a timeout, a 595):
        so the allocations are released only when it answers that the CT is absent, or once
        the CT was removed. If it cannot be asked, the container is marked error and keeps
        its VMID, name and addresses until a later check (the reconciler, or the
        container's Reconcile in the admin).
        """
        if pool_claim.is_claim(ctx.job.params):
            return claim.undo(ctx)
        c = ctx.container
        access.undo_create_access(ctx)
        try:
            config = config_or_none(ctx)
        except UpstreamError as exc:
            return _keep_for_a_later_check(
                ctx, f"the portal could not check whether CT {c.vmid} exists on {ctx.node} ({exc})"
            )
        if config is None:
            found = f"Proxmox answers that CT {c.vmid} is not on {ctx.node}"
        elif not is_ours(config, c):
            found = f"CT {c.vmid} on {ctx.node} is a guest the portal does not manage, not this one"
        else:
            try:
                _remove_partial_ct(ctx, config)
            except UpstreamError as exc:
                return _keep_for_a_later_check(
                    ctx, f"removing the partly made CT {c.vmid} from {ctx.node} failed ({exc})"
                )
            found = f"the partly made CT {c.vmid} was removed from {ctx.node}"
        services.container_set_status(
            container=c, to=ContainerStatus.DELETED, message="creation failed"
        )
        return f"{found}; its name and address are free again"


def _create_ct(ctx: JobContext, st: dict[str, Any]) -> None:
    c = ctx.container
    if st.get("upid") and st.get("vmid") != c.vmid:
        st.pop("upid")  # a task for a VMID this container no longer has
    again = {"value": False}  # set by begin(): the VMID was taken, try again

    def begin() -> str | None:
        again["value"] = False
        try:
            upid = ctx.client.create_container(
                ctx.node,
                vmid=c.vmid,
                ostemplate=c.template.volid,
                hostname=c.hostname,
                cores=c.cores,
                memory_mib=c.memory_mib,
                swap_mib=c.swap_mib,
                rootfs=f"{c.site.rootfs_storage}:{c.disk_gib}",
                net0=f"name=eth0,bridge={c.site.bridge},hwaddr={c.mac},ip=dhcp,type=veth",
                tags=managed_tags(c),
                description=f"Cluster Portal container {c.pk}, owner {c.owner.get_username()}",
                ssh_public_keys=wazuh.create_keys(ctx),
            )
        except VmidTaken:
            again["value"] = _vmid_taken(ctx, st)
            return None
        st["vmid"] = c.vmid
        ctx.log(f"CT {c.vmid} on {ctx.node}: task {upid}")
        return upid

    for _ in range(MAX_VMID_RETRIES):
        ctx.run_task(
            st, begin, resumed=f"following the create task of an earlier attempt ({st.get('upid')})"
        )
        if not again["value"]:
            return
    raise ResourceExhausted(
        "Proxmox kept refusing the VMIDs offered; an operator should check the cluster",
        code=ErrorCode.VMID_EXHAUSTED,
    )


def _vmid_taken(ctx: JobContext, st: dict[str, Any]) -> bool:
    """The VMID exists: adopt our own CT (False), or try again with the same or the next one."""
    c = ctx.container
    # Ours from an attempt whose answer was lost, or somebody else's. While Proxmox
    # creates a CT its config holds only `lock: create`, so wait for it.
    config = wait_unlocked(ctx)
    if config is None:
        return True  # gone again: try the same VMID once more
    if is_ours(config, c):
        ctx.log(f"CT {c.vmid} already exists on {ctx.node} from an earlier attempt; adopting it")
        return False
    ctx.log(
        f"VMID {c.vmid} is used on Proxmox by a guest the portal does not manage; "
        "taking the next free one",
        level=LogLevel.WARNING,
    )
    old = c.vmid
    services.container_reassign_vmid(container=c, taken=old)
    st.pop("upid", None)
    ctx.log(f"now CT {c.vmid} on {ctx.node} (was {old})")
    return True


def _remove_partial_ct(ctx: JobContext, config: dict[str, Any]) -> None:
    c = ctx.container
    try:
        if config.get("lock") and wait_unlocked(ctx, lock=str(config["lock"])) is None:
            return  # the locked CT went away while we waited
        ctx.log(f"removing the partly made CT {c.vmid}")
        if read_state(ctx) == "running":
            ctx.wait(ctx.client.stop(ctx.node, c.vmid))
        ctx.wait(ctx.client.delete_container(ctx.node, c.vmid, purge=True, force=True))
    except ProxmoxNotFound:
        ctx.log(f"CT {c.vmid} is already gone")


def _keep_for_a_later_check(ctx: JobContext, what: str) -> str:
    c = ctx.container
    services.container_set_status(container=c, to=ContainerStatus.ERROR, message=what)
    return (
        f"{what}; {c.hostname} is marked error and keeps its name and address until a later check"
    )
