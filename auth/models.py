"""Identity: collaborators, quota policies and overrides, resource requests, API tokens,
SSH keys, authenticator apps and recovery codes, Proxmox realm syncs and the audit log
(app label `accounts`)."""

from __future__ import annotations

import time
from base64 import b32encode
from binascii import unhexlify
from collections.abc import Mapping
from typing import ClassVar
from urllib.parse import quote, urlencode

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django_otp.models import Device, ThrottlingMixin, TimestampMixin
from django_otp.oath import TOTP
from django_otp.util import hex_validator, random_hex

from portal.crypto import EncryptedTextField

# The limits a policy or an override may set, with the unit shown in messages.
QUOTA_LIMITS: tuple[tuple[str, str, str], ...] = (
    # (field, name in messages, unit)
    ("max_containers", "containers", ""),
    ("max_cores", "cores", ""),
    ("max_memory_mib", "memory", " MiB"),
    ("max_swap_mib", "swap", " MiB"),
    ("max_disk_gib", "disk", " GiB"),
    ("max_container_cores", "cores", ""),
    ("max_container_memory_mib", "memory", " MiB"),
    ("max_container_swap_mib", "swap", " MiB"),
    ("max_container_disk_gib", "disk", " GiB"),
    # What a user publishes on the gateway beyond each container's own name and SSH port.
    ("max_routes", "routes", ""),
    ("max_ports", "published ports", ""),
    ("max_container_routes", "routes", ""),
    ("max_container_ports", "published ports", ""),
)
QUOTA_FIELDS = tuple(f for f, _, _ in QUOTA_LIMITS)
# The largest value a limit may take: what its column (PositiveIntegerField) holds on
# PostgreSQL, checked at every edge so a bigger one is a 400, never a database error.
QUOTA_VALUE_MAX = 2_147_483_647


def limit_phrase(field: str, value: object) -> str:
    """A limit as users read it ("memory 2048 MiB per container"), never the field name."""
    _, name, unit = next(row for row in QUOTA_LIMITS if row[0] == field)
    if field == "max_containers":
        scope = ""
    elif field.startswith("max_container_"):
        scope = " per container"
    else:
        scope = " in total"
    return f"{name} {value}{unit}{scope}"


def limits_text(limits: Mapping[str, object]) -> str:
    """Several limits, in the order of QUOTA_LIMITS: "containers 8, cores 16 in total"."""
    return ", ".join(limit_phrase(f, limits[f]) for f in QUOTA_FIELDS if f in limits)


def _is_limit_value(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= QUOTA_VALUE_MAX


def _limit(help_text: str) -> models.PositiveIntegerField:
    return models.PositiveIntegerField(
        null=True, blank=True, help_text=f"{help_text} Empty: no say (the other rows decide)."
    )


def _count_limit(help_text: str) -> models.PositiveIntegerField:
    return models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MaxValueValidator(QUOTA_VALUE_MAX)],
        help_text=f"{help_text} Empty: no say (the other rows decide).",
    )


class QuotaLimits(models.Model):
    """The limits; an empty one means this row has no say in it (the others decide)."""

    max_containers = _limit("Most containers at once.")
    max_cores = _limit("Total cores over all containers.")
    max_memory_mib = _limit("Total memory (MiB) over all containers.")
    max_swap_mib = _limit("Total swap (MiB) over all containers.")
    max_disk_gib = _limit("Total disk (GiB) over all containers.")
    max_container_cores = _limit("Cores of the largest single container.")
    max_container_memory_mib = _limit("Memory (MiB) of the largest single container.")
    max_container_swap_mib = _limit("Swap (MiB) of the largest single container.")
    max_container_disk_gib = _limit("Disk (GiB) of the largest single container.")
    max_routes = _count_limit("Routes over all containers, besides each one's own name.")
    max_ports = _count_limit("Published ports over all containers, besides each SSH port.")
    max_container_routes = _count_limit("Routes of one container, besides its own name.")
    max_container_ports = _count_limit("Published ports of one container, besides SSH.")

    class Meta:
        abstract = True


class GroupPolicy(QuotaLimits):
    """Quota limits for the members of a group; the default policy has no group.

    A user gets, limit by limit, the most generous value of the policies of their
    groups and the default policy (and of their quota overrides).
    """

    group = models.OneToOneField(
        Group, null=True, blank=True, on_delete=models.CASCADE, related_name="quota_policy"
    )
    description = models.CharField(max_length=200, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "group quota policy"
        verbose_name_plural = "group quota policies"
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["group"],
                condition=Q(group__isnull=True),
                name="accounts_grouppolicy_one_default",
            ),
        ]

    def __str__(self) -> str:
        return f"group {self.group.name}" if self.group is not None else "the default policy"

    @property
    def label(self) -> str:
        return str(self)


class QuotaOverride(QuotaLimits):
    """More quota for one user, granted by staff (directly or by approving a request)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="quota_overrides"
    )
    reason = models.CharField(max_length=500, blank=True)
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering: ClassVar = ["-created_at"]

    def __str__(self) -> str:
        return f"quota override #{self.pk} for {self.user}"

    @property
    def label(self) -> str:
        """Its name where users read it (quota tables, quota errors): no internal number."""
        until = f", until {self.expires_at:%Y-%m-%d}" if self.expires_at else ""
        return f"extra quota granted {self.created_at:%Y-%m-%d}{until}"

    @property
    def is_active(self) -> bool:
        return self.expires_at is None or self.expires_at > timezone.now()


class Collaborator(models.Model):
    """A user the owner lets see, start, stop and open a container."""

    container = models.ForeignKey(
        "containers.Container", on_delete=models.CASCADE, related_name="collaborators"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="collaborations"
    )
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering: ClassVar = ["container", "user__username"]
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["container", "user"], name="accounts_collaborator_unique_per_container"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} on {self.container}"


class RequestKind(models.TextChoices):
    QUOTA = "quota", "More quota"
    RESIZE = "resize", "A bigger container"


class RequestStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    DENIED = "denied", "Denied"
    CANCELLED = "cancelled", "Cancelled"


class ResourceRequest(models.Model):
    """A user asks for more quota, or for one container to grow, with a reason.

    Staff approve or deny it; an approval applies itself (a quota override, and for a
    resize also the resize job) and the outcome is kept here for the user to see.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="resource_requests"
    )
    kind = models.CharField(max_length=16, choices=RequestKind.choices)
    container = models.ForeignKey(
        "containers.Container",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="resource_requests",
    )
    # Quota requests: the limits wanted, {"max_memory_mib": 16384, ...} (QUOTA_FIELDS).
    limits = models.JSONField(default=dict, blank=True)
    # Resize requests: the size wanted for `container` (empty = unchanged).
    cores = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    memory_mib = models.PositiveIntegerField(null=True, blank=True)
    swap_mib = models.PositiveIntegerField(null=True, blank=True)
    disk_gib = models.PositiveIntegerField(null=True, blank=True)
    reason = models.TextField()
    status = models.CharField(
        max_length=16, choices=RequestStatus.choices, default=RequestStatus.PENDING
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.CharField(max_length=500, blank=True)
    outcome = models.CharField(max_length=500, blank=True)
    override = models.ForeignKey(
        QuotaOverride, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    job = models.ForeignKey(
        "containers.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering: ClassVar = ["-created_at"]
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=Q(status__in=RequestStatus.values),
                name="accounts_resourcerequest_status_valid",
            ),
        ]
        indexes: ClassVar = [
            models.Index(fields=["status", "created_at"], name="accounts_request_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.user} ({self.status})"

    @property
    def limit_phrases(self) -> list[str]:
        """The limits a quota request asks for, as users read them."""
        return [limit_phrase(f, self.limits[f]) for f in QUOTA_FIELDS if f in self.limits]

    def clean(self) -> None:
        if self.kind == RequestKind.RESIZE and self.container_id is None:
            raise ValidationError({"container": "a resize request names its container"})
        if self.kind == RequestKind.QUOTA:
            unknown = set(self.limits) - set(QUOTA_FIELDS)
            if unknown:
                raise ValidationError({"limits": f"unknown limits: {', '.join(sorted(unknown))}"})
            if not self.limits:
                raise ValidationError({"limits": "ask for at least one limit"})
            if not all(_is_limit_value(v) for v in self.limits.values()):
                raise ValidationError({"limits": f"a limit is a whole number 0-{QUOTA_VALUE_MAX}"})
        elif all(v is None for v in (self.cores, self.memory_mib, self.swap_mib, self.disk_gib)):
            raise ValidationError("ask for at least one of cores, memory, swap or disk")


class TokenScope(models.TextChoices):
    READ = "read", "Read only"
    WRITE = "write", "Read and write"


class ApiToken(models.Model):
    """A bearer token for scripts, the CLI and the GitHub Action.

    Only a SHA-256 hash of the token is kept; `prefix` (public, unique) finds the row.
    A token acts as its user, never more: scope `read` only narrows that further.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    token_hash = models.CharField(max_length=64)
    scope = models.CharField(max_length=8, choices=TokenScope.choices, default=TokenScope.READ)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar = ["-created_at"]
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=Q(scope__in=TokenScope.values), name="accounts_apitoken_scope_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_usable(self) -> bool:
        return self.revoked_at is None and not self.is_expired


class SshKey(models.Model):
    """One of a user's SSH public keys (normalised; passed to new containers and the directory)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="ssh_keys"
    )
    name = models.CharField(max_length=100, blank=True)
    key = models.TextField()
    fingerprint = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering: ClassVar = ["user", "created_at"]
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["user", "fingerprint"], name="accounts_sshkey_unique_per_user"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name or self.key.split()[0]} SHA256:{self.fingerprint}"


class RealmSync(models.Model):
    """When Proxmox (a site's cluster) last synced its LDAP realm knowing this user."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="realm_syncs"
    )
    site = models.ForeignKey("networking.Site", on_delete=models.CASCADE, related_name="+")
    realm = models.CharField(max_length=32)
    synced_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["user", "site", "realm"], name="accounts_realmsync_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user}@{self.realm} on {self.site}"


def _new_totp_key() -> str:
    return str(random_hex(20))  # 160 bits, as django-otp's own TOTP devices


def _validate_totp_key(value: str) -> None:
    hex_validator()(value)


class AuthenticatorDevice(TimestampMixin, ThrottlingMixin, Device):
    """A TOTP authenticator app (RFC 6238), as django-otp's TOTPDevice, but with its key
    encrypted at rest (FIELD_ENCRYPTION_KEYS, like a node's token secret).

    The key is shown once, while the device is being enrolled; afterwards it is read
    only to check codes and never rendered, logged or returned.
    """

    key = EncryptedTextField(
        default=_new_totp_key,
        validators=[_validate_totp_key],
        help_text="The hex-encoded secret (stored encrypted; never shown after enrolment).",
    )
    step: models.PositiveSmallIntegerField[int, int] = models.PositiveSmallIntegerField(
        default=30, help_text="The time step in seconds."
    )
    t0: models.BigIntegerField[int, int] = models.BigIntegerField(
        default=0, help_text="The Unix time at which steps start."
    )
    digits: models.PositiveSmallIntegerField[int, int] = models.PositiveSmallIntegerField(
        choices=[(6, 6), (8, 8)], default=6
    )
    tolerance: models.PositiveSmallIntegerField[int, int] = models.PositiveSmallIntegerField(
        default=1, help_text="Time steps in the past or future to allow."
    )
    drift: models.SmallIntegerField[int, int] = models.SmallIntegerField(
        default=0, help_text="Steps the device's clock is off."
    )
    last_t: models.BigIntegerField[int, int] = models.BigIntegerField(
        default=-1, help_text="The step of the last code accepted (each code works once)."
    )

    class Meta(Device.Meta):
        verbose_name = "authenticator app (TOTP)"
        verbose_name_plural = "authenticator apps (TOTP)"

    def __repr__(self) -> str:  # never the key
        return f"<AuthenticatorDevice {self.pk} of user {self.user_id}>"

    @property
    def bin_key(self) -> bytes:
        return unhexlify(self.key.encode())

    def get_throttle_factor(self) -> int:
        return int(getattr(settings, "OTP_TOTP_THROTTLE_FACTOR", 1))

    def verify_token(self, token: str) -> bool:
        """django-otp's TOTP check: within the tolerance, later than the last code used."""
        allowed, _ = self.verify_is_allowed()
        if not allowed:
            return False
        try:
            value = int(token)
        except (TypeError, ValueError):
            verified = False
        else:
            totp = TOTP(self.bin_key, self.step, self.t0, self.digits, self.drift)
            totp.time = time.time()
            verified = bool(totp.verify(value, self.tolerance, self.last_t + 1))
            if verified:
                self.last_t = totp.t()
                if getattr(settings, "OTP_TOTP_SYNC", True):
                    self.drift = totp.drift
                self.throttle_reset(commit=False)
                self.set_last_used_timestamp(commit=False)
                self.save()
        if not verified:
            self.throttle_increment(commit=True)
        return verified

    @property
    def config_url(self) -> str:
        """The otpauth:// URL an authenticator app reads from the enrolment QR code."""
        label = str(self.user.get_username())
        issuer = str(getattr(settings, "OTP_TOTP_ISSUER", "") or "").replace(":", "")
        params = urlencode(
            {
                "secret": b32encode(self.bin_key),
                "algorithm": "SHA1",
                "digits": self.digits,
                "period": self.step,
            }
        )
        if issuer:
            label = f"{issuer}:{label}"
            params += f"&issuer={quote(issuer)}"
        return f"otpauth://totp/{quote(label)}?{params}"


class RecoveryCodeDevice(ThrottlingMixin, Device):
    """Single-use recovery codes for two-factor login, stored as hashes only."""

    class Meta(Device.Meta):
        verbose_name = "recovery codes"
        verbose_name_plural = "recovery codes"

    def get_throttle_factor(self) -> int:
        return int(getattr(settings, "OTP_TOTP_THROTTLE_FACTOR", 1))

    def verify_token(self, token: str) -> bool:
        from .otp import hash_recovery_code, normalise_recovery_code

        allowed, _ = self.verify_is_allowed()
        if not allowed:
            return False
        code = normalise_recovery_code(token)
        used = (
            self.codes.filter(code_hash=hash_recovery_code(code), used_at__isnull=True).update(
                used_at=timezone.now()
            )
            if code
            else 0
        )
        if used:
            self.throttle_reset()
            return True
        self.throttle_increment()
        return False


class RecoveryCode(models.Model):
    device = models.ForeignKey(RecoveryCodeDevice, on_delete=models.CASCADE, related_name="codes")
    code_hash = models.CharField(max_length=64)
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"recovery code {self.pk} ({'used' if self.used_at else 'unused'})"


class AuditEntry(models.Model):
    """Who did what to which object, from where: written once, by the service that did it."""

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="audit_entries",
    )
    actor_name = models.CharField(max_length=150, blank=True)
    address = models.GenericIPAddressField(null=True, blank=True)
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    summary = models.CharField(max_length=500, blank=True)
    changes = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering: ClassVar = ["-created_at", "-id"]
        verbose_name_plural = "audit entries"
        indexes: ClassVar = [
            models.Index(fields=["object_type", "object_id"], name="accounts_audit_object_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_name or '-'} {self.action}"


class GatewayCredential(models.Model):
    """The gateway's own credential for one user on one route host (`<label>.<domain>`).

    The portal's session cookie never leaves the portal's host. To open a protected
    route, the portal mints one of these after login: first a one-time `code` (60 s,
    in a redirect URL), exchanged on the route's host for a host-only cookie whose
    hash is `secret_hash`. Only the gateway's auth check accepts it; only hashes are
    kept. Logging out of the portal revokes every credential minted by that session.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="gateway_credentials"
    )
    host = models.CharField(max_length=253)
    code_hash = models.CharField(max_length=64, unique=True)
    secret_hash = models.CharField(max_length=64, null=True, blank=True, unique=True)
    # SHA-256 of the portal session key that minted it, so logout revokes exactly these.
    portal_session_hash = models.CharField(max_length=64, db_index=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar = ["-created_at"]

    def __str__(self) -> str:
        return f"gateway credential {self.pk} for {self.host}"


# Notification preferences and webhooks live in their own module (this one is long enough).
from .notification_models import (  # noqa: E402, F401
    NotificationKind,
    NotificationPreference,
    Webhook,
)
