"""Deployments in the admin (LaunchPad): read-only rows, written only through the
services (remove, extend by a week). The env's values are never shown: its names are."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from portal.actors import acting_user
from portal.admin_tools import ReadOnlyAdmin, run_each

from . import deployment_selectors, deployments
from .models import Deployment


@admin.register(Deployment)
class DeploymentAdmin(ReadOnlyAdmin, admin.ModelAdmin):
    list_display = (
        "name",
        "repository",
        "ref",
        "owner",
        "state",
        "short_commit",
        "short_serving",
        "expires_at",
        "updated_at",
    )
    list_filter = ("state",)
    search_fields = ("name", "repository", "ref", "owner__username")
    list_select_related = ("owner", "container")
    fields = (
        "name",
        "repository",
        "ref",
        "owner",
        "container",
        "state",
        "state_message",
        "commit",
        "serving_commit",
        "committed_at",
        "app",
        "env_names",
        "ttl_days",
        "expires_at",
        "warned_at",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields
    actions = ("destroy", "extend_week")

    @admin.display(description="env (names only)")
    def env_names(self, obj: Deployment) -> str:
        return ", ".join(deployment_selectors.deployment_env_names(obj)) or "-"

    @admin.display(description="commit")
    def short_commit(self, obj: Deployment) -> str:
        return obj.commit[:12]

    @admin.display(description="serving")
    def short_serving(self, obj: Deployment) -> str:
        return obj.serving_commit[:12]

    @admin.action(description="Remove the selected deployments (and their containers)")
    def destroy(self, request: HttpRequest, queryset: QuerySet[Deployment]) -> None:
        def one(d: Deployment) -> str:
            job = deployments.deployment_destroy(
                deployment=d, actor=acting_user(request), reason="removed by an operator"
            )
            return f"{d.name}: " + (f"delete job {job.pk} queued" if job else "removed")

        run_each(self, request, queryset, one)

    @admin.action(description="Extend the selected deployments by 7 days")
    def extend_week(self, request: HttpRequest, queryset: QuerySet[Deployment]) -> None:
        def one(d: Deployment) -> str:
            deployments.deployment_extend(deployment=d, actor=acting_user(request), days=7)
            return f"{d.name} expires in 7 days"

        run_each(self, request, queryset, one)
