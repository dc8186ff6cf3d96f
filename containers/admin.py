from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from portal.admin_tools import operator, run_each

from . import reconcile, services
from .models import Container, Job, JobLogEntry, Template


def _job_text(obj: Model, verb: str, job: Job) -> str:
    return f"{obj}: {verb} queued (job {job.pk})"


@admin.register(Template)
class TemplateAdmin(admin.ModelAdmin):
    list_display = ("name", "display_name", "site", "volid", "enabled")
    list_filter = ("site", "enabled")
    search_fields = ("name", "display_name", "volid")


@admin.register(Container)
class ContainerAdmin(admin.ModelAdmin):
    list_display = ("hostname", "vmid", "site", "node", "owner", "status", "ip", "created_at")
    list_filter = ("site", "node", "status")
    search_fields = ("hostname", "ip", "mac", "owner__username")
    list_select_related = ("site", "node", "owner")
    readonly_fields = (
        "site",
        "node",
        "vmid",
        "ip",
        "mac",
        "status",
        "status_message",
        "created_at",
        "updated_at",
        "running_since",
        "deleted_at",
    )
    actions = ("start", "stop", "delete", "reconcile")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # containers are created through the portal's services, never by hand

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # deleting a row by hand would orphan the CT
        return actions

    # Each action calls a service, which checks the state and audits the request.
    def _queue(
        self,
        request: HttpRequest,
        queryset: QuerySet[Container],
        verb: str,
        service: Callable[..., Job],
    ) -> None:
        run_each(
            self,
            request,
            queryset,
            lambda c: _job_text(c, verb, service(container=c, actor=operator(request))),
        )

    @admin.action(description="Start the selected containers")
    def start(self, request: HttpRequest, queryset: QuerySet[Container]) -> None:
        self._queue(request, queryset, "start", services.container_start)

    @admin.action(description="Stop the selected containers")
    def stop(self, request: HttpRequest, queryset: QuerySet[Container]) -> None:
        self._queue(request, queryset, "stop", services.container_stop)

    @admin.action(description="Delete the selected containers (and their CTs)")
    def delete(self, request: HttpRequest, queryset: QuerySet[Container]) -> None:
        self._queue(request, queryset, "delete", services.container_delete)

    @admin.action(description="Reconcile with Proxmox (read each CT's real status)")
    def reconcile(self, request: HttpRequest, queryset: QuerySet[Container]) -> None:
        run_each(
            self,
            request,
            queryset,
            lambda c: reconcile.container_reconcile(container=c, actor=operator(request)),
        )


class JobLogInline(admin.TabularInline):
    model = JobLogEntry
    fields = ("created_at", "level", "step", "message")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "kind",
        "status",
        "container",
        "actor",
        "attempts",
        "created_at",
        "finished_at",
    )
    list_filter = ("kind", "status")
    search_fields = ("id", "container__hostname")
    list_select_related = ("container", "actor")
    inlines = [JobLogInline]
    actions = ("retry",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in Job._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Retry the selected failed jobs")
    def retry(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        run_each(
            self,
            request,
            queryset.select_related("container"),
            lambda j: (
                f"job {j.pk}: retried as job "
                f"{services.job_retry(job=j, actor=operator(request)).pk}"
            ),
        )
