"""The `resize` job: cores, memory and swap online, then the disk grows."""

from __future__ import annotations

from typing import Any

from containers import quotas, services
from containers.models import Container, ContainerStatus, Job, JobKind, StepState
from containers.resources import Resources

from .context import JobContext
from .kind import JobKindBase, register


@register
class ResizeJob(JobKindBase):
    name = JobKind.RESIZE
    verb = "Resizing"
    steps = (("config", "Change cores, memory and swap"), ("disk", "Grow the disk"))
    start_from = (ContainerStatus.RUNNING, ContainerStatus.STOPPED)
    retry_from = start_from
    permission = "resize"

    def retrying(self, job: Job, container: Container) -> None:
        quotas.check(
            container.owner,
            new=Resources.from_params(job.params),
            current=container,
        )

    def run(self, ctx: JobContext) -> dict[str, Any]:
        c, p = ctx.container, ctx.job.params

        def config(st: dict[str, Any]) -> None:
            ctx.client.update_config(
                ctx.node, c.vmid, cores=p["cores"], memory=p["memory_mib"], swap=p["swap_mib"]
            )
            ctx.log(f"cores {p['cores']}, memory {p['memory_mib']} MiB, swap {p['swap_mib']} MiB")

        def disk(st: dict[str, Any]) -> str | None:
            if p["disk_gib"] <= c.disk_gib:
                return StepState.SKIPPED
            size = f"{p['disk_gib']}G"
            ctx.run_task(
                st, lambda: ctx.client.resize_disk(ctx.node, c.vmid, disk="rootfs", size=size)
            )
            ctx.log(f"disk {p['disk_gib']} GiB")
            return None

        ctx.run_step("config", config)
        ctx.run_step("disk", disk)
        services.container_apply_resources(
            container=c,
            cores=p["cores"],
            memory_mib=p["memory_mib"],
            swap_mib=p["swap_mib"],
            disk_gib=p["disk_gib"],
        )
        return dict(p)

    def undo(self, ctx: JobContext) -> str:
        return "its resources are unchanged where Proxmox did not apply them"
