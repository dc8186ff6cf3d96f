from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from .models import Container, Job, JobLogEntry, Template


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

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # containers are created through the portal's services, never by hand


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

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in Job._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
