"""Wazuh in the admin: each site's manager (saved through wazuh_manager_save; secrets
write-only) with its status poll, agents and highest-level alerts (admin_status.py), the
"test the connection" action, and the agents the portal enrolled (read-only: the
enrolment, poll and sweep write them)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from portal.actors import acting_user
from portal.admin_tools import ReadOnlyAdmin, ServiceAdmin, run_each

from . import services
from .admin_status import ManagerStatusFields
from .models import WazuhAgent, WazuhManager

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
