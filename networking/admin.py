from __future__ import annotations

from django import forms
from django.contrib import admin

from auth.admin_audit import AuditedModelAdmin  # admin changes to sites and nodes are audited

from .models import Node, Site


class NodeForm(forms.ModelForm):
    # Write-only: the stored secret is never rendered back; leaving it blank keeps it.
    token_secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Stored encrypted. Leave blank to keep the current secret.",
    )

    class Meta:
        model = Node
        fields = (
            "site",
            "name",
            "api_url",
            "token_id",
            "token_secret",
            "ca_bundle",
            "tls_fingerprint",
            "verify_tls",
            "slot",
            "state",
        )

    def clean_token_secret(self) -> str:
        value: str = self.cleaned_data.get("token_secret") or ""
        if not value and self.instance.pk:
            return self.instance.token_secret
        return value


class NodeInline(admin.TabularInline):
    model = Node
    form = NodeForm
    extra = 0
    fields = ("name", "slot", "state", "api_url", "token_id", "token_secret")


@admin.register(Site)
class SiteAdmin(AuditedModelAdmin):
    list_display = ("name", "slug", "domain", "internal_domain", "subnet", "gateway_ip")
    search_fields = ("name", "slug", "domain")
    prepopulated_fields = {"slug": ("name",)}
    inlines = [NodeInline]


@admin.register(Node)
class NodeAdmin(AuditedModelAdmin):
    form = NodeForm
    list_display = ("name", "site", "slot", "state", "max_cpu", "capacity_updated_at")
    list_filter = ("site", "state")
    search_fields = ("name",)
    readonly_fields = (
        "max_cpu",
        "max_memory",
        "max_disk",
        "used_memory",
        "used_disk",
        "cpu_load",
        "capacity_updated_at",
        "created_at",
        "updated_at",
    )
