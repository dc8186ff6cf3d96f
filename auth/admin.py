from __future__ import annotations

from typing import Any, ClassVar

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from containers import resource_requests
from portal.actors import acting_user
from portal.admin_tools import ReadOnlyAdmin, ServiceAdmin
from portal.errors import PortalError

from . import notifications, quota_overrides, sshkeys, two_factor
from . import tokens as auth_tokens
from .admin_audit import AuditedModelAdmin
from .models import (
    QUOTA_FIELDS,
    ApiToken,
    AuditEntry,
    AuthenticatorDevice,
    Collaborator,
    GroupPolicy,
    QuotaOverride,
    RealmSync,
    RequestStatus,
    ResourceRequest,
    SshKey,
    Webhook,
)

LIMIT_FIELDS = (
    (
        "Totals",
        {
            "fields": (
                "max_containers",
                "max_cores",
                "max_memory_mib",
                "max_swap_mib",
                "max_disk_gib",
            )
        },
    ),
    (
        "Largest single container",
        {
            "fields": (
                "max_container_cores",
                "max_container_memory_mib",
                "max_container_swap_mib",
                "max_container_disk_gib",
            )
        },
    ),
    (
        "Published on the gateway (besides each container's name and SSH port)",
        {
            "fields": (
                "max_routes",
                "max_ports",
                "max_container_routes",
                "max_container_ports",
            )
        },
    ),
)


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin, admin.ModelAdmin):
    """Read-only and filterable: the audit log is written by services, never by hand."""

    list_display = ("created_at", "actor_name", "action", "object_repr", "address", "summary")
    list_filter = ("action", "object_type", "created_at")
    search_fields = ("actor_name", "object_repr", "object_id", "summary", "address")
    date_hierarchy = "created_at"
    list_select_related = ("actor",)
    readonly_fields = (
        "created_at",
        "actor",
        "actor_name",
        "address",
        "action",
        "object_type",
        "object_id",
        "object_repr",
        "summary",
        "changes",
    )


@admin.register(GroupPolicy)
class GroupPolicyAdmin(AuditedModelAdmin):
    list_display = (
        "__str__",
        "max_containers",
        "max_cores",
        "max_memory_mib",
        "max_swap_mib",
        "max_disk_gib",
        "max_container_memory_mib",
    )
    search_fields = ("group__name", "description")
    fieldsets: ClassVar[Any] = ((None, {"fields": ("group", "description")}), *LIMIT_FIELDS)


@admin.register(QuotaOverride)
class QuotaOverrideAdmin(ServiceAdmin):
    """Granted through quota_override_create (which validates the limits), revoked through
    quota_override_revoke; a grant is not edited in place: revoke it and grant again."""

    list_display = ("user", "created_at", "expires_at", "granted_by", "reason")
    search_fields = ("user__username", "reason")
    list_filter = ("created_at",)
    raw_id_fields = ("user",)
    readonly_fields = ("granted_by", "created_at")
    fieldsets: ClassVar[Any] = (
        (None, {"fields": ("user", "reason", "expires_at", "granted_by", "created_at")}),
        *LIMIT_FIELDS,
    )

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: QuotaOverride, form: Any, change: bool) -> None:
        data = form.cleaned_data
        limits = {f: data[f] for f in QUOTA_FIELDS if data.get(f) is not None}
        override = self.call_service(
            request,
            lambda: quota_overrides.quota_override_create(
                user=data["user"],
                actor=acting_user(request),
                reason=data.get("reason") or "",
                expires_at=data.get("expires_at"),
                limits=limits,
            ),
        )
        if override is not None:
            obj.pk, obj._state.adding = override.pk, False

    def delete_model(self, request: HttpRequest, obj: QuotaOverride) -> None:
        quota_overrides.quota_override_revoke(override=obj, actor=acting_user(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[QuotaOverride]) -> None:
        for override in queryset.select_related("user"):
            quota_overrides.quota_override_revoke(override=override, actor=acting_user(request))


@admin.register(ResourceRequest)
class ResourceRequestAdmin(admin.ModelAdmin):
    list_display = (
        "pk",
        "user",
        "kind",
        "container",
        "status",
        "created_at",
        "decided_by",
        "outcome",
    )
    list_filter = ("status", "kind")
    search_fields = ("user__username", "reason", "container__hostname")
    list_select_related = ("user", "container", "decided_by")
    readonly_fields = (
        "user",
        "kind",
        "container",
        "limits",
        "cores",
        "memory_mib",
        "swap_mib",
        "disk_gib",
        "reason",
        "status",
        "decided_by",
        "decided_at",
        "outcome",
        "override",
        "job",
        "created_at",
    )
    fields = (*readonly_fields[:-1], "decision_note", "created_at")
    actions = ("approve", "deny")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def _decide(
        self, request: HttpRequest, queryset: QuerySet[ResourceRequest], approve: bool
    ) -> None:
        done = 0
        for row in queryset.filter(status=RequestStatus.PENDING):
            try:
                if approve:
                    resource_requests.resource_request_approve(
                        request=row,
                        actor=acting_user(request),
                        note=row.decision_note,
                    )
                else:
                    resource_requests.resource_request_deny(
                        request=row,
                        actor=acting_user(request),
                        note=row.decision_note,
                    )
                done += 1
            except PortalError as exc:
                self.message_user(request, f"#{row.pk}: {exc.message}", messages.ERROR)
        if done:
            verb = "approved and applied" if approve else "denied"
            self.message_user(request, f"{done} request(s) {verb}", messages.SUCCESS)

    @admin.action(description="Approve and apply the selected requests")
    def approve(self, request: HttpRequest, queryset: QuerySet[ResourceRequest]) -> None:
        self._decide(request, queryset, True)

    @admin.action(description="Deny the selected requests")
    def deny(self, request: HttpRequest, queryset: QuerySet[ResourceRequest]) -> None:
        self._decide(request, queryset, False)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are made by their users; the admin only lists and revokes (the hash is never shown)."""

    list_display = (
        "name",
        "user",
        "prefix",
        "scope",
        "created_at",
        "expires_at",
        "last_used_at",
        "last_used_ip",
        "revoked_at",
    )
    list_filter = ("scope",)
    search_fields = ("name", "prefix", "user__username")
    list_select_related = ("user",)
    fields = (
        "name",
        "user",
        "prefix",
        "scope",
        "created_at",
        "expires_at",
        "last_used_at",
        "last_used_ip",
        "revoked_at",
    )
    readonly_fields = fields
    actions = ("revoke",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        for token in queryset.filter(revoked_at__isnull=True):
            auth_tokens.token_revoke(token=token, actor=acting_user(request))
        self.message_user(request, "revoked", messages.SUCCESS)


@admin.register(SshKey)
class SshKeyAdmin(admin.ModelAdmin):
    list_display = ("user", "name", "fingerprint", "created_at")
    search_fields = ("user__username", "name", "fingerprint")
    readonly_fields = ("user", "name", "key", "fingerprint", "created_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: SshKey) -> None:
        sshkeys.ssh_key_remove(key=obj, actor=acting_user(request))


@admin.register(Collaborator)
class CollaboratorAdmin(admin.ModelAdmin):
    """Read-only: collaborator changes go through the access job (GUI, API)."""

    list_display = ("container", "user", "added_by", "created_at")
    search_fields = ("container__hostname", "user__username")
    list_select_related = ("container", "user", "added_by")
    readonly_fields = ("container", "user", "added_by", "created_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(RealmSync)
class RealmSyncAdmin(admin.ModelAdmin):
    list_display = ("user", "site", "realm", "synced_at")
    list_filter = ("site", "realm")
    search_fields = ("user__username",)
    readonly_fields = ("user", "site", "realm", "synced_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(AuthenticatorDevice)
class AuthenticatorDeviceAdmin(admin.ModelAdmin):
    """Which users have an authenticator app; deleting one resets the user's 2FA (audited).
    The key is never shown: it is not a field here."""

    list_display = ("user", "name", "confirmed", "created_at", "last_used_at")
    list_filter = ("confirmed",)
    search_fields = ("user__username",)
    fields = ("user", "name", "confirmed", "created_at", "last_used_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: AuthenticatorDevice) -> None:
        two_factor.otp_disable(user=obj.user, actor=acting_user(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for device in queryset.select_related("user"):
            two_factor.otp_disable(user=device.user, actor=acting_user(request))


class WebhookForm(forms.ModelForm):
    """The URL and secret are write-only here: the form never shows what is stored."""

    url = forms.CharField(
        label="URL",
        required=False,
        max_length=2000,
        widget=forms.PasswordInput(render_value=False),
        help_text="https (or http to NOTIFY_WEBHOOK_HTTP_HOSTS). Empty: unchanged.",
    )
    secret = forms.CharField(
        required=False,
        max_length=200,
        widget=forms.PasswordInput(render_value=False),
        help_text="Signs each POST (X-Portal-Signature). Empty: unchanged.",
    )

    class Meta:
        model = Webhook
        fields = ("site", "user", "url", "secret", "enabled")


@admin.register(Webhook)
class WebhookAdmin(ServiceAdmin):
    """A site's webhook (notifications about its containers) or a user's; set and removed
    through auth.notifications (validated, audited by host only)."""

    form = WebhookForm
    list_display = ("__str__", "site", "user", "enabled", "updated_at")
    list_filter = ("enabled", "site")
    raw_id_fields = ("user",)

    def save_model(self, request: HttpRequest, obj: Webhook, form: Any, change: bool) -> None:
        data = form.cleaned_data
        url = data.get("url") or (Webhook.objects.get(pk=obj.pk).url if change else "")
        row = self.call_service(
            request,
            lambda: notifications.webhook_set(
                actor=acting_user(request),
                user=data.get("user"),
                site=data.get("site"),
                url=url,
                secret=data.get("secret") or None,
                enabled=bool(data.get("enabled")),
            ),
        )
        if row is not None:
            obj.pk, obj._state.adding = row.pk, False

    def delete_model(self, request: HttpRequest, obj: Webhook) -> None:
        notifications.webhook_remove(webhook=obj, actor=acting_user(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Webhook]) -> None:
        for hook in queryset:
            notifications.webhook_remove(webhook=hook, actor=acting_user(request))
