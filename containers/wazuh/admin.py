"""Wazuh in the admin: each site's manager (saved through wazuh_manager_save; secrets
write-only) with its status poll, agents and highest-level alerts (admin_status.py), the
"test the connection" action, the agents the portal enrolled (read-only: the enrolment,
poll and sweep write them), and the sweep's reports (read-only)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from portal.actors import acting_user
from portal.admin_tools import ReadOnlyAdmin, ServiceAdmin, run_each

from . import services
from .admin_status import ManagerStatusFields
from .models import WazuhAgent, WazuhManager, WazuhSweepRun

_SECRET_HELP = "Stored encrypted. Leave blank to keep the current value."


def _secret_field(label: str) -> forms.CharField:
    # Write-only: the stored value is never rendered back; blank keeps it (the service).
    return forms.CharField(
        label=label,
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=_SECRET_HELP,
    )


class WazuhManagerForm(forms.ModelForm):
    api_password = _secret_field("API password")
    enrolment_secret = _secret_field("Registration password or enrolment token")
    indexer_password = _secret_field("Indexer password")

    class Meta:
        model = WazuhManager
        fields = services.MANAGER_FIELDS


@admin.register(WazuhManager)
class WazuhManagerAdmin(ManagerStatusFields, ServiceAdmin):
    form = WazuhManagerForm
    list_display = (
        "site",
        "enabled",
        "api_url",
        "enrolment_mode",
        "default_group",
        "indexer_url",
        "polled_at",
    )
    list_filter = ("enabled", "enrolment_mode")
    list_select_related = ("site",)
    readonly_fields = (
        *ManagerStatusFields.STATUS,
        *ManagerStatusFields.ALERTS,
        "created_at",
        "updated_at",
    )
    actions = ("test_connection",)

    def get_fieldsets(self, request: HttpRequest, obj: WazuhManager | None = None) -> Any:
        if obj is None:
            return [(None, {"fields": services.MANAGER_FIELDS})]
        # The status poll's reading and the indexer's alerts (cached) under the settings.
        return [
            (None, {"fields": services.MANAGER_FIELDS}),
            ("Status", {"fields": ManagerStatusFields.STATUS}),
            ("Highest-level recent alerts", {"fields": ManagerStatusFields.ALERTS}),
            ("Record", {"fields": ("created_at", "updated_at")}),
        ]

    # Saved by wazuh_manager_save (validated, audited, blank secrets kept). Not deleted
    # here: an operator turns a manager off with `enabled`; its agents' records stay.
    def save_model(self, request: HttpRequest, obj: WazuhManager, form: Any, change: bool) -> None:
        self.save_through(
            request,
            obj,
            form,
            change,
            fields=services.MANAGER_FIELDS,
            create=services.wazuh_manager_save,
            update=lambda manager, **kw: services.wazuh_manager_save(manager=manager, **kw),
        )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Test the connection (log in, read the agents' summary)")
    def test_connection(self, request: HttpRequest, queryset: QuerySet[WazuhManager]) -> None:
        def test(manager: WazuhManager) -> str:  # errors never hold a secret
            check = services.wazuh_manager_test(manager=manager, actor=acting_user(request))
            return f"{manager}: {check.describe()}"

        run_each(self, request, queryset.select_related("site"), test)


@admin.register(WazuhAgent)
class WazuhAgentAdmin(ReadOnlyAdmin, admin.ModelAdmin):
    list_display = (
        "name",
        "site",
        "container",
        "agent_id",
        "status",
        "last_keepalive",
        "version",
        "status_updated_at",
        "last_error",
    )
    list_filter = ("site", "status")
    search_fields = ("name", "agent_id", "container__hostname")
    list_select_related = ("site", "container")


def _items(items: list[dict[str, Any]], tail: str) -> SafeString:
    """A report's list as HTML: each agent's name, container and `tail` (reason, how)."""
    if not items:
        return format_html("{}", "none")
    return format_html(
        "<ul>{}</ul>",
        format_html_join(
            "",
            "<li><strong>{}</strong> ({}): {}</li>",
            (
                (
                    i.get("name", ""),
                    f"{i.get('hostname')}, VMID {i.get('vmid')}"
                    if i.get("container")
                    else "no container",
                    i.get(tail, ""),
                )
                for i in items
            ),
        ),
    )


@admin.register(WazuhSweepRun)
class WazuhSweepRunAdmin(ReadOnlyAdmin, admin.ModelAdmin):
    """The sweep's reports (containers.wazuh.sweep): written by the sweep alone."""

    list_display = ("started_at", "site", "dry_run", "removed_count", "kept_count", "summary")
    list_filter = ("site", "dry_run")
    list_select_related = ("site",)
    fields = (
        "site",
        "dry_run",
        "actor",
        "started_at",
        "finished_at",
        "summary",
        "removed_agents",
        "kept_agents",
        "error_lines",
        "live",
    )
    readonly_fields = fields

    @admin.display(description="removed")
    def removed_count(self, obj: WazuhSweepRun) -> int:
        return len(obj.removed)

    @admin.display(description="kept")
    def kept_count(self, obj: WazuhSweepRun) -> int:
        return len(obj.kept)

    @admin.display(description="Removed (or, in a dry run, would be)")
    def removed_agents(self, obj: WazuhSweepRun) -> SafeString:
        return _items(obj.removed, "how")

    @admin.display(description="Kept, and why")
    def kept_agents(self, obj: WazuhSweepRun) -> SafeString:
        return _items(obj.kept, "reason")

    @admin.display(description="Errors")
    def error_lines(self, obj: WazuhSweepRun) -> SafeString:
        if not obj.errors:
            return format_html("{}", "none")
        return format_html(
            "<ul>{}</ul>", format_html_join("", "<li>{}</li>", ((e,) for e in obj.errors))
        )
