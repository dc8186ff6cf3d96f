"""The power jobs: `start`, `stop` and `restart`. A failed one records what Proxmox says."""

from __future__ import annotations

from typing import Any

from containers import services
from containers.models import ContainerStatus, JobKind
from containers.proxmox import ProxmoxError

from .context import JobContext
from .kind import JobKindBase, register
from .steps import inspect, start_ct, undo_sync_state


class _PowerJob(JobKindBase):
    def undo(self, ctx: JobContext) -> str:
        return undo_sync_state(ctx)


@register
class StartJob(_PowerJob):
    name = JobKind.START
    verb = "Starting"
    steps = (("start", "Start the container"), ("inspect", "Check its status"))
    start_from = (ContainerStatus.STOPPED, ContainerStatus.ERROR)
    retry_from = start_from
    permission = "start"

    def run(self, ctx: JobContext) -> dict[str, Any]:
        ctx.run_step("start", lambda st: start_ct(ctx, st))
        ctx.run_step("inspect", lambda st: inspect(ctx, st))
        services.container_set_status(container=ctx.container, to=ContainerStatus.RUNNING)
        return {}


@register
class StopJob(_PowerJob):
    name = JobKind.STOP
    verb = "Stopping"
    steps = (("stop", "Shut the container down"),)
    start_from = (ContainerStatus.RUNNING, ContainerStatus.ERROR)
    retry_from = start_from
    permission = "stop"

    def run(self, ctx: JobContext) -> dict[str, Any]:
        def begin() -> str | None:
            try:
                return ctx.client.shutdown(
                    ctx.node, ctx.container.vmid, timeout=60, force_stop=True
                )
            except ProxmoxError as exc:
                if "not running" in exc.message:
                    ctx.log("it was not running")
                    return None
                raise

        def stop(st: dict[str, Any]) -> None:
            ctx.run_task(st, begin)

        ctx.run_step("stop", stop)
        services.container_set_status(container=ctx.container, to=ContainerStatus.STOPPED)
        return {}


@register
class RestartJob(_PowerJob):
    name = JobKind.RESTART
    verb = "Restarting"
    steps = (("reboot", "Restart the container"), ("inspect", "Check its status"))
    start_from = (ContainerStatus.RUNNING,)
    retry_from = start_from
    permission = "restart"

    def run(self, ctx: JobContext) -> dict[str, Any]:
        def reboot(st: dict[str, Any]) -> None:
            ctx.run_task(st, lambda: ctx.client.reboot(ctx.node, ctx.container.vmid))

        ctx.run_step("reboot", reboot)
        ctx.run_step("inspect", lambda st: inspect(ctx, st))
        services.container_set_status(container=ctx.container, to=ContainerStatus.RUNNING)
        return {}
