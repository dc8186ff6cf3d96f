"""Steps more than one kind of job runs: reading the CT, starting it, checking it, and
publishing it on the gateway. Each gets the JobContext and its step's dict."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings

from containers import services
from containers.models import POWER_STATES, LogLevel, StepState
from containers.proxmox import ProxmoxError, ProxmoxNotFound, ProxmoxUnavailable
from networking.services import request_apply, wait_for_apply
from portal.errors import UpstreamUnavailable

from .context import JobContext


def config_or_none(ctx: JobContext) -> dict[str, Any] | None:
    try:
        return ctx.client.container_config(ctx.node, ctx.container.vmid)
    except ProxmoxNotFound:
        return None


def wait_unlocked(ctx: JobContext, *, lock: str = "create") -> dict[str, Any] | None:
    """Wait until a previous attempt's task has released the CT's lock."""
    deadline = time.monotonic() + settings.PROXMOX_TASK_TIMEOUT
    while True:
        config = config_or_none(ctx)
        if config is None or config.get("lock") != lock:
            return config
        if time.monotonic() > deadline:
            raise ProxmoxUnavailable(f"CT {ctx.container.vmid} stayed locked ({lock})")
        ctx.heartbeat()
        time.sleep(settings.PROXMOX_TASK_POLL_INTERVAL)


def read_state(ctx: JobContext) -> str:
    return str(ctx.client.container_status(ctx.node, ctx.container.vmid).get("status", "unknown"))


def start_ct(ctx: JobContext, st: dict[str, Any]) -> None:
    def begin() -> str | None:
        try:
            return ctx.client.start(ctx.node, ctx.container.vmid)
        except ProxmoxError as exc:
            if "already running" in exc.message:
                ctx.log("it was already running")
                return None
            raise

    ctx.run_task(st, begin)


def inspect(ctx: JobContext, st: dict[str, Any]) -> None:
    c = ctx.container
    status = ctx.client.container_status(ctx.node, c.vmid)
    if status.get("status") != "running":
        raise ProxmoxError(f"CT {c.vmid} is {status.get('status')} after starting")
    interfaces = ctx.client.interfaces(ctx.node, c.vmid) or []
    seen = sorted(
        a.get("ip-address", "")
        for i in interfaces
        if i.get("name") == "eth0"
        for a in i.get("ip-addresses", [])
        if a.get("ip-address-type") == "inet"
    )
    st["addresses"] = seen
    if seen and c.ip not in seen:
        ctx.log(
            f"eth0 has {', '.join(seen)}, not the reserved {c.ip}: its DHCP reservation is not served yet",
            level=LogLevel.WARNING,
        )
    else:
        ctx.log(
            f"running on {ctx.node}, address {c.ip}"
            + ("" if seen else " (reserved; DHCP has not answered yet)")
        )


def gateway_step(ctx: JobContext) -> None:
    """Ask the site's gateway to apply, and wait until an apply covering this change succeeded."""
    if not any(s["name"] == "gateway" for s in ctx.job.steps):
        return  # a job planned before the gateway step existed

    def publish(st: dict[str, Any]) -> str | None:
        site = ctx.container.site
        # A create's first try waits for the apply its allocation asked for (it covers the
        # new container); anything else, or a try after one that failed, asks anew.
        generation = (
            None if st.get("generation") else ctx.job.params.get("gateway_generation")
        ) or request_apply(site, reason=f"{ctx.job.kind} {ctx.container.hostname}")
        st["generation"] = generation  # written by the first heartbeat of the wait
        if not settings.GATEWAY_JOB_WAIT:
            ctx.log(
                f"asked the gateway for generation {generation}; this portal does not wait for it"
            )
            return StepState.SKIPPED
        revision = wait_for_apply(site, generation, on_poll=ctx.heartbeat)
        if revision is None:
            ctx.log(f"gateway generation {generation} applied")
            return None
        ctx.log(
            f"gateway revision {revision.pk} ({revision.status}, generation {revision.generation}) "
            f"in {revision.duration_ms} ms"
        )
        c = ctx.container
        ours = {("route", i) for i in c.routes.values_list("id", flat=True)}
        ours |= {("mapping", i) for i in c.port_mappings.values_list("id", flat=True)}
        ours.add(("host", c.pk))
        for item in revision.excluded:
            if (item.get("kind"), item.get("id")) not in ours:
                continue
            ctx.log(
                f"the gateway left out {item['name']}: {item['reason']}", level=LogLevel.WARNING
            )
        return None

    ctx.run_step("gateway", publish)


def undo_sync_state(ctx: JobContext) -> str:
    """After a failed start/stop/restart, record what Proxmox says the CT really is."""
    try:
        state = read_state(ctx)
    except (UpstreamUnavailable, ProxmoxError):
        return ""
    target = POWER_STATES.get(state)
    if target and ctx.container.status != target:
        services.container_set_status(container=ctx.container, to=target)
    return f"it is {state} on Proxmox"
