"""The create job's plan for a container taken from the warm pool (docs/pool.md).

A create whose params name a claimed member (`containers.pool.claim`) runs these steps
instead of making a CT: the member's stopped CT gets the container's hostname, `net0`
with the reserved MAC and `ip=dhcp`, its cores, memory, swap, tags and `onboot`; its disk
grows if more was asked; it starts; it is inspected; the owner's SSH keys replace the
portal's deploy key over SSH (the member was made with that key only); then access,
realm, ACL, gateway and Wazuh as for any create. `CreateJob` hands a claim's plan, run
and undo to this module, and so does a deployment's first push (`DeployJob`, whose deploy
steps follow; its container keeps the deploy key, as a normal first push's does).

A claim that fails never leaves a container with the user's name half-made: an
untouched member (still named, tagged and stopped as the refill made it) goes back to
the pool; otherwise its CT is destroyed and the member forgotten. Either way the
container is deleted, which frees its name, address and MAC.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from containers import services
from containers.deploy_key import deploy_public_key
from containers.models import Container, ContainerStatus, LogLevel, StepState
from containers.pool import claim as pool_claim
from containers.pool.models import POOL_TAG
from containers.proxmox import ProxmoxError
from containers.remote import Remote, shared
from containers.tags import is_ours, managed_tags, tag_set
from networking.services import wait_for_apply
from portal.errors import UpstreamError

from . import access, wazuh
from .context import JobContext
from .kind import pending
from .steps import config_or_none, gateway_step, inspect, read_state, start_ct

STEPS = (
    ("configure", "Take its container from the warm pool and configure it"),
    ("disk", "Grow the disk"),
    ("start", "Start the container"),
    ("inspect", "Check its status and address"),
    ("ssh_keys", "Install the owner's SSH keys"),
    ("access_group", "Create the directory access group"),
    ("realm_sync", "Sync the Proxmox LDAP realm (first container)"),
    ("proxmox_acl", "Grant the owner access in Proxmox"),
    ("gateway", "Publish its name and ports on the gateway"),
)
SSH_COMMAND_TIMEOUT = 60.0
# Root's authorized keys become standard input's, kept with their owner and mode.
INSTALL_KEYS = (
    'umask 077; mkdir -p "$HOME/.ssh"; A="$HOME/.ssh/authorized_keys"; '
    'cat > "$A.portal" && cat "$A.portal" > "$A" && rm -f "$A.portal"'
)


def plan(container: Container | None) -> list[dict[str, Any]]:
    return pending((*STEPS, *wazuh.create_steps(container)))


def member_id(ctx: JobContext) -> int:
    return int(ctx.job.params[pool_claim.MEMBER_PARAM])


def run(ctx: JobContext) -> dict[str, Any]:
    c = ctx.container
    services.container_set_status(container=c, to=ContainerStatus.PROVISIONING)
    ctx.run_step("configure", lambda st: _configure(ctx, st))
    ctx.run_step("disk", lambda st: _grow(ctx, st))
    ctx.run_step("start", lambda st: start_ct(ctx, st))
    ctx.run_step("inspect", lambda st: inspect(ctx, st))
    ctx.run_step("ssh_keys", lambda st: _install_keys(ctx, st))
    ctx.run_step("access_group", lambda st: access.access_group_sync(ctx, st))
    ctx.run_step("realm_sync", lambda st: access.realm_sync_step(ctx, st))
    ctx.run_step("proxmox_acl", lambda st: access.proxmox_acl_sync(ctx, st))
    gateway_step(ctx)
    wazuh.enrol_step(ctx)
    pool_claim.member_done(member_id=member_id(ctx))
    services.container_set_status(container=c, to=ContainerStatus.RUNNING)
    return {"vmid": c.vmid, "node": ctx.node, "ip": c.ip, "mac": c.mac, "pool": True}


# -- steps -------------------------------------------------------------------------------------
def _configure(ctx: JobContext, st: dict[str, Any]) -> None:
    c = ctx.container
    ctx.log(f"from the pool: CT {c.vmid} on {ctx.node}, made ahead and stopped")
    config = config_or_none(ctx)
    if config is None:
        raise ProxmoxError(f"the pool's CT {c.vmid} is not on {ctx.node} any more")
    if not (is_ours(config, c) or POOL_TAG in tag_set(config.get("tags"))):
        raise ProxmoxError(f"CT {c.vmid} on {ctx.node} is not a pool member any more")
    ctx.client.update_config(
        ctx.node,
        c.vmid,
        hostname=c.hostname,
        net0=f"name=eth0,bridge={c.site.bridge},hwaddr={c.mac},ip=dhcp,type=veth",
        cores=c.cores,
        memory=c.memory_mib,
        swap=c.swap_mib,
        tags=managed_tags(c),  # the pool's tag goes: it is this container's CT now
        onboot=1,
        description=f"Cluster Portal container {c.pk}, owner {c.owner.get_username()}",
    )
    ctx.log(
        f"{c.hostname}: MAC {c.mac}, {c.cores} cores, {c.memory_mib} MiB memory, "
        f"{c.swap_mib} MiB swap"
    )


def _grow(ctx: JobContext, st: dict[str, Any]) -> str | None:
    c = ctx.container
    made = int(ctx.job.params.get(pool_claim.DISK_PARAM) or c.disk_gib)
    if c.disk_gib <= made:
        return StepState.SKIPPED
    size = f"{c.disk_gib}G"
    ctx.run_task(st, lambda: ctx.client.resize_disk(ctx.node, c.vmid, disk="rootfs", size=size))
    ctx.log(f"disk {made} -> {c.disk_gib} GiB")
    return None


def _install_keys(ctx: JobContext, st: dict[str, Any]) -> None:
    """Root's keys become those a normal create gives the CT (`wazuh.create_keys`): the
    owner's, so the deploy key the member was made with goes, unless it is still needed:
    a deployment's container keeps it (its own keys hold it, and every push logs in with
    it), and the Wazuh step takes it out afterwards when only that step needed it."""
    c = ctx.container
    generation = ctx.job.params.get("gateway_generation")
    if generation and settings.GATEWAY_JOB_WAIT:
        # Its address is served once the apply its allocation asked for is done.
        wait_for_apply(c.site, int(generation), on_poll=ctx.heartbeat)
    keys = wazuh.create_keys(ctx).strip()
    remote = Remote.for_container(c.ip, container_id=c.pk)
    with shared(remote) as remote:
        remote.wait_ready(timeout=settings.DEPLOY_SSH_WAIT_SECONDS, on_tick=ctx.heartbeat)
        code = remote.run(
            INSTALL_KEYS,
            stdin=(keys + "\n").encode() if keys else b"",
            on_line=lambda line: ctx.log(line, level=LogLevel.WARNING),
            on_tick=ctx.heartbeat,
            timeout=SSH_COMMAND_TIMEOUT,
        )
    if code != 0:
        raise UpstreamError(f"installing the owner's SSH keys in {c.hostname} failed (exit {code})")
    count = len([k for k in keys.splitlines() if k.strip()])
    kept = deploy_public_key().split()[1] in keys
    ctx.log(
        f"{count} key(s) installed for root; the portal's deploy key "
        + ("stays among them" if kept else "was replaced")
    )


# -- undo --------------------------------------------------------------------------------------
def undo(ctx: JobContext) -> str:
    """Put the member back (untouched and stopped) or destroy its CT; the container goes.

    As for a create, if Proxmox cannot be asked, the container is marked error and keeps
    what it holds (the member stays claimed) until a later check, which settles the member
    too (`pool_claim.claim_settle`)."""
    from .create import _keep_for_a_later_check, _remove_partial_ct

    c, member = ctx.container, member_id(ctx)
    access.undo_create_access(ctx)
    try:
        config = config_or_none(ctx)
        back = (
            config is not None
            and pool_claim.untouched(config, c.vmid)
            and read_state(ctx) == "stopped"
        )
    except UpstreamError as exc:
        return _keep_for_a_later_check(
            ctx, f"the portal could not check CT {c.vmid} on {ctx.node} ({exc})"
        )
    if config is None:
        pool_claim.member_drop(member_id=member)
        found = f"Proxmox answers that CT {c.vmid} is not on {ctx.node}"
    elif back:
        pool_claim.member_return(member_id=member)
        found = f"CT {c.vmid} was not touched and went back to the pool"
    elif is_ours(config, c) or POOL_TAG in tag_set(config.get("tags")):
        try:
            _remove_partial_ct(ctx, config)
        except UpstreamError as exc:
            return _keep_for_a_later_check(
                ctx, f"removing the partly configured CT {c.vmid} from {ctx.node} failed ({exc})"
            )
        pool_claim.member_drop(member_id=member)
        found = f"the partly configured CT {c.vmid} was removed from {ctx.node}"
    else:
        pool_claim.member_drop(member_id=member)
        found = f"CT {c.vmid} on {ctx.node} is a guest the portal does not manage, not this one"
    services.container_set_status(
        container=c, to=ContainerStatus.DELETED, message="creation failed"
    )
    return f"{found}; its name and address are free again"
