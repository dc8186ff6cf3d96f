from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse

from portal.actors import acting_user
from portal.admin_tools import ServiceAdmin, form_values, run_each

from . import reconcile, services, template_services
from .admin_alerts import OpenAlertInline
from .models import Container, Job, JobLogEntry, Template


def _job_text(obj: Model, verb: str, job: Job) -> str:
    return f"{obj}: {verb} queued (job {job.pk})"


# What the container form may change: resources, through the resize job. Everything else
# is the jobs' (status, vmid, node, ip, mac, ...) or fixed for the container's life: the
# hostname is read-only on every face (GUI, API, admin), so route, DNS and CT never differ.
RESOURCE_FIELDS = ("cores", "memory_mib", "swap_mib", "disk_gib")


@admin.register(Template)
class TemplateAdmin(ServiceAdmin):
    """Added by the nodes' "import templates" action; changed through template_update;
    disabled, never deleted (containers point at it)."""

    list_display = ("name", "display_name", "site", "volid", "enabled")
    list_filter = ("site", "enabled")
    search_fields = ("name", "display_name", "volid")
    readonly_fields = ("site", "name", "volid")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Template, form: Any, change: bool) -> None:
        fresh = Template.objects.get(pk=obj.pk)  # obj already holds the form's values
        self.call_service(
            request,
            lambda: template_services.template_update(
                template=fresh,
                actor=acting_user(request),
                values=form_values(form, template_services.TEMPLATE_FIELDS),
            ),
        )


@admin.register(Container)
class ContainerAdmin(ServiceAdmin):
    list_display = ("hostname", "vmid", "site", "node", "owner", "status", "ip", "created_at")
    list_filter = ("site", "node", "status")
    search_fields = ("hostname", "ip", "mac", "owner__username")
    list_select_related = ("site", "node", "owner")
    actions = ("start", "stop", "delete", "reconcile")
    inlines = [OpenAlertInline]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in Container._meta.fields if f.name not in RESOURCE_FIELDS]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # containers are created through the portal's services, never by hand

    def save_model(self, request: HttpRequest, obj: Container, form: Any, change: bool) -> None:
        """Queue a resize job; the row changes when Proxmox has the new values."""
        values = form_values(form, RESOURCE_FIELDS)
        if not values:
            return
        current = Container.objects.select_related("template", "owner").get(pk=obj.pk)
        job = self.call_service(
            request,
            lambda: services.container_resize(
                container=current, actor=acting_user(request), **values
            ),
        )
        if job is not None:
            self.message_user(request, _job_text(current, "resize", job), messages.SUCCESS)

    # The per-object Delete button and its confirmation page queue the delete job (the CT,
    # its routes and addresses go with it); the row stays, as history.
    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        names = [f"{c}: the delete job removes CT {c.vmid} from {c.node}" for c in objs]
        return names, {}, set(), []

    def log_deletions(self, request: HttpRequest, queryset: Any) -> list[Any]:
        return []  # the service audits the request; nothing is deleted yet

    def delete_model(self, request: HttpRequest, obj: Container) -> None:
        job = self.call_service(
            request, lambda: services.container_delete(container=obj, actor=acting_user(request))
        )
        if job is not None:
            self.message_user(request, _job_text(obj, "delete", job), messages.SUCCESS)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Container]) -> None:
        self._queue(request, queryset, "delete", services.container_delete)

    def response_delete(self, request: HttpRequest, obj_display: str, obj_id: Any) -> Any:
        return HttpResponseRedirect(reverse("admin:containers_container_change", args=[obj_id]))

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
            lambda c: _job_text(c, verb, service(container=c, actor=acting_user(request))),
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
            lambda c: reconcile.container_reconcile(container=c, actor=acting_user(request)),
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
                f"{services.job_retry(job=j, actor=acting_user(request)).pk}"
            ),
        )


from . import admin_deployments, admin_reconcile  # noqa: E402,F401 - each registers its admin
from .pool import admin as pool_admin  # noqa: E402,F401 - registers the pool's admins
from .wazuh import admin as wazuh_admin  # noqa: E402,F401 - registers the Wazuh admins
