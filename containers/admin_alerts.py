"""Noisy-neighbour alerts in the admin: read-only, as the poll keeps them (metrics/alerts.py)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from .metrics.models import OPEN_ALERT, ContainerAlert


class AlertStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("open", "open"), ("pending", "pending"), ("cleared", "cleared")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "open":
            return queryset.filter(OPEN_ALERT)
        if self.value() == "pending":
            return queryset.filter(raised_at__isnull=True, cleared_at__isnull=True)
        if self.value() == "cleared":
            return queryset.filter(cleared_at__isnull=False)
        return queryset


class _ReadOnly:
    """The poll owns alerts: nobody adds, edits or deletes one by hand."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ContainerAlert)
class AlertAdmin(_ReadOnly, admin.ModelAdmin):
    list_display = ("container", "kind", "since", "raised_at", "cleared_at", "value", "message")
    list_filter = (AlertStateFilter, "kind", "container__site", "container__node")
    search_fields = ("container__hostname", "container__owner__username")
    list_select_related = ("container",)
    date_hierarchy = "since"


class OpenAlertInline(_ReadOnly, admin.TabularInline):
    """A container's open alerts on its admin page."""

    model = ContainerAlert
    verbose_name_plural = "open alerts"
    fields = ("kind", "since", "raised_at", "value", "message")
    readonly_fields = fields
    extra = 0

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).filter(OPEN_ALERT)
