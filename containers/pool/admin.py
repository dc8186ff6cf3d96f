"""The pools in the admin: each one's target (set through `pool_target_set`), size, the age
of its oldest member, the hit rate, the last build time; and the members, read-only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.timesince import timesince

from portal.actors import acting_user
from portal.admin_tools import ReadOnlyAdmin, ServiceAdmin

from . import selectors, services
from .models import PoolMember, PoolTarget


@admin.register(PoolTarget)
class PoolTargetAdmin(ServiceAdmin):
    list_display = (
        "template",
        "node",
        "site",
        "target",
        "size",
        "oldest",
        "hit_rate",
        "build_time",
        "skipped_reason",
    )
    list_filter = ("site", "node")
    list_editable = ()
    fields = ("template", "node", "target")
    readonly_fields = ("site",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[PoolTarget]:
        return selectors.pools_with_figures(super().get_queryset(request))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # A pool stays the pool of its template and node: only its target changes.
        return ("template", "node") if obj is not None else ()

    @admin.display(description="size", ordering="size")
    def size(self, obj: PoolTarget) -> str:
        building = getattr(obj, "building", 0)
        size = getattr(obj, "size", 0)
        return f"{size}" + (f" (+{building} being made)" if building else "")

    @admin.display(description="oldest member")
    def oldest(self, obj: PoolTarget) -> str:
        at = getattr(obj, "oldest_ready_at", None)
        return timesince(at, timezone.now()) if at else "-"

    @admin.display(description="hit rate")
    def hit_rate(self, obj: PoolTarget) -> str:
        rate = selectors.hit_rate(obj)
        return "-" if rate is None else f"{rate:.0%} ({obj.hits} of {obj.hits + obj.misses})"

    @admin.display(description="last build")
    def build_time(self, obj: PoolTarget) -> str:
        s = obj.last_build_seconds
        return "-" if s is None else f"{s:.1f} s"

    def save_model(self, request: HttpRequest, obj: PoolTarget, form: Any, change: bool) -> None:
        pool = self.call_service(
            request,
            lambda: services.pool_target_set(
                template=form.cleaned_data.get("template") or obj.template,
                node=form.cleaned_data.get("node") or obj.node,
                target=form.cleaned_data["target"],
                actor=acting_user(request),
            ),
        )
        if pool is not None:
            obj.pk, obj._state.adding = pool.pk, False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a target of 0 turns a pool off


@admin.register(PoolMember)
class PoolMemberAdmin(ReadOnlyAdmin, admin.ModelAdmin):
    list_display = ("vmid", "template", "node", "state", "volid", "ready_at", "build_seconds")
    list_filter = ("site", "state", "node")
    list_select_related = ("template", "node")
