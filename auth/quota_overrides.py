"""Quota overrides: more quota for one user, granted (and taken back) by staff.

Keyword-only, typed, atomic, domain errors only; each write records its audit entry here.
Resource requests, which an approval may turn into an override and a resize, are
containers/resource_requests.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import transaction

from portal.errors import ValidationFailed

from .audit import audit_record
from .models import QUOTA_FIELDS, QUOTA_VALUE_MAX, QuotaOverride, ResourceRequest
from .selectors import require_staff

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def quota_override_create(
    *,
    user: User,
    actor: User | None,
    reason: str,
    expires_at: Any = None,
    limits: dict[str, int],
    request: ResourceRequest | None = None,
) -> QuotaOverride:
    """Give one user more quota (the limits named; the rest unchanged)."""
    require_staff(actor, "grant quota")
    unknown = set(limits) - set(QUOTA_FIELDS)
    if unknown or not limits:
        raise ValidationFailed(
            f"name at least one limit of {', '.join(QUOTA_FIELDS)}", field="limits"
        )
    for field, value in limits.items():
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or not 0 <= value <= QUOTA_VALUE_MAX
        ):
            raise ValidationFailed(
                f"{field} must be a whole number from 0 to {QUOTA_VALUE_MAX}", field=field
            )
    with transaction.atomic():
        override = QuotaOverride.objects.create(
            user=user, reason=reason[:500], granted_by=actor, expires_at=expires_at, **limits
        )
        audit_record(
            actor=actor,
            action="quota.override",
            obj=override,
            summary=f"granted {user.get_username()} "
            + ", ".join(f"{k}={v}" for k, v in sorted(limits.items()))
            + (f" (request #{request.pk})" if request else ""),
            changes={"user": user.get_username(), **limits},
        )
    return override


def quota_override_revoke(*, override: QuotaOverride, actor: User | None) -> None:
    """Take a grant back (the admin's Delete); the user's quota is the group's again."""
    require_staff(actor, "revoke quota")
    with transaction.atomic():
        audit_record(
            actor=actor,
            action="quota.revoke",
            obj=override,
            summary=f"revoked override #{override.pk} of {override.user.get_username()}",
            changes={"user": override.user.get_username()},
        )
        override.delete()
