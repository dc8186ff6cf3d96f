"""Serializers for the identity endpoints: /me, tokens, resource requests, audit, collaborators."""

from __future__ import annotations

from rest_framework import serializers

from auth.models import (
    QUOTA_VALUE_MAX,
    ApiToken,
    AuditEntry,
    RequestKind,
    ResourceRequest,
    SshKey,
    TokenScope,
)
from containers.models import MAX_CORES, MAX_DISK_GIB, MAX_MEMORY_MIB, MAX_SWAP_MIB
from portal.api.base import ID_MAX

EXPIRY_CHOICES = [7, 30, 90, 365]


class SshKeySerializer(serializers.ModelSerializer):
    class Meta:
        model = SshKey
        fields = ("id", "name", "key", "fingerprint", "created_at")
        read_only_fields = fields


class QuotaSerializer(serializers.Serializer):
    exempt = serializers.BooleanField()
    usage = serializers.DictField(child=serializers.IntegerField())
    limits = serializers.DictField(
        child=serializers.JSONField(),
        help_text='{limit: {"value": int or null (unlimited), "source": policy}}',
    )
    remaining = serializers.DictField(child=serializers.IntegerField(allow_null=True))


class MeSerializer(serializers.Serializer):
    username = serializers.CharField()
    email = serializers.CharField(allow_blank=True)
    full_name = serializers.CharField(allow_blank=True)
    is_staff = serializers.BooleanField()
    groups = serializers.ListField(child=serializers.CharField())
    quota = QuotaSerializer()
    ssh_keys = SshKeySerializer(many=True)
    otp_enrolled = serializers.BooleanField()


class ApiTokenSerializer(serializers.ModelSerializer):
    """A token as listed: never its secret (the database does not have it)."""

    active = serializers.SerializerMethodField()

    class Meta:
        model = ApiToken
        fields: tuple[str, ...] = (
            "id",
            "name",
            "prefix",
            "scope",
            "created_at",
            "expires_at",
            "last_used_at",
            "last_used_ip",
            "revoked_at",
            "active",
        )
        read_only_fields = fields

    def get_active(self, token: ApiToken) -> bool:
        return token.is_usable


class ApiTokenCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    scope = serializers.ChoiceField(choices=TokenScope.choices, default=TokenScope.READ)
    expires_in_days = serializers.ChoiceField(
        choices=EXPIRY_CHOICES,
        allow_null=True,
        default=90,
        help_text="7, 30, 90, 365, or null for never",
    )


class TokenLoginSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=1024, trim_whitespace=False)
    otp = serializers.CharField(
        max_length=32,
        required=False,
        allow_blank=True,
        default="",
        help_text="The authenticator app's code, or a recovery code, when the account has 2FA.",
    )
    name = serializers.CharField(max_length=100, default="portalctl")
    scope = serializers.ChoiceField(choices=TokenScope.choices, default=TokenScope.WRITE)
    expires_in_days = serializers.ChoiceField(
        choices=[(d, str(d)) for d in (7, 30, 90, 365)],
        default=30,
        help_text="7, 30, 90 or 365: a token for a password always expires",
    )


class ApiTokenCreatedSerializer(ApiTokenSerializer):
    token = serializers.SerializerMethodField(
        help_text="The token itself: shown this once, never again."
    )

    class Meta(ApiTokenSerializer.Meta):
        fields = (*ApiTokenSerializer.Meta.fields, "token")
        read_only_fields = fields

    def get_token(self, token: ApiToken) -> str:
        return str(self.context["plaintext"])


class ResourceRequestSerializer(serializers.ModelSerializer):
    user = serializers.SerializerMethodField()
    container_hostname = serializers.SerializerMethodField()
    decided_by = serializers.SerializerMethodField()

    class Meta:
        model = ResourceRequest
        fields = (
            "id",
            "user",
            "kind",
            "container",
            "container_hostname",
            "limits",
            "cores",
            "memory_mib",
            "swap_mib",
            "disk_gib",
            "reason",
            "status",
            "decided_by",
            "decided_at",
            "decision_note",
            "outcome",
            "job",
            "created_at",
        )
        read_only_fields = fields

    def get_user(self, r: ResourceRequest) -> str:
        return r.user.get_username()

    def get_container_hostname(self, r: ResourceRequest) -> str | None:
        return r.container.hostname if r.container else None

    def get_decided_by(self, r: ResourceRequest) -> str | None:
        return r.decided_by.get_username() if r.decided_by else None


class ResourceRequestCreateSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=RequestKind.choices)
    reason = serializers.CharField(max_length=2000)
    container = serializers.IntegerField(
        required=False, min_value=1, max_value=ID_MAX, help_text="For a resize: the container's id."
    )
    limits = serializers.DictField(
        child=serializers.IntegerField(min_value=0, max_value=QUOTA_VALUE_MAX),
        required=False,
        help_text='For quota: the limits wanted, e.g. {"max_memory_mib": 16384}.',
    )
    cores = serializers.IntegerField(required=False, min_value=1, max_value=MAX_CORES)
    memory_mib = serializers.IntegerField(required=False, min_value=1, max_value=MAX_MEMORY_MIB)
    swap_mib = serializers.IntegerField(required=False, min_value=0, max_value=MAX_SWAP_MIB)
    disk_gib = serializers.IntegerField(required=False, min_value=1, max_value=MAX_DISK_GIB)


class DecisionSerializer(serializers.Serializer):
    note = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class AuditEntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEntry
        fields = (
            "id",
            "created_at",
            "actor_name",
            "address",
            "action",
            "object_type",
            "object_id",
            "object_repr",
            "summary",
            "changes",
        )
        read_only_fields = fields


class CollaboratorSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)


class CollaboratorListSerializer(serializers.Serializer):
    collaborators = serializers.ListField(child=serializers.CharField())
