"""Quota decisions: overrides granted by staff, and the resource requests users make for
more quota or a bigger container (approved, denied or cancelled here).

Keyword-only, typed, atomic, domain errors only; each write records its audit entry here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

from portal.errors import Conflict, InvalidState, NotFound, ValidationFailed

from .audit import audit_record
from .models import (
    QUOTA_FIELDS,
    QUOTA_VALUE_MAX,
    QuotaOverride,
    RequestKind,
    RequestStatus,
    ResourceRequest,
    limits_text,
)
from .selectors import require_container_permission, require_staff

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from containers.models import Container


# -- quotas and resource requests ----------------------------------------------------------------
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


def resource_request_create(
    *,
    user: User,
    kind: str,
    reason: str,
    container: Container | None = None,
    limits: dict[str, int] | None = None,
    cores: int | None = None,
    memory_mib: int | None = None,
    swap_mib: int | None = None,
    disk_gib: int | None = None,
) -> ResourceRequest:
    """Ask staff for more quota, or for one container to grow, with a reason."""
    reason = (reason or "").strip()
    if len(reason) < 10:
        raise ValidationFailed("say in a sentence why you need it", field="reason")
    if kind not in RequestKind.values:
        raise ValidationFailed("kind is quota or resize", field="kind")
    if kind == RequestKind.RESIZE:
        if container is None:
            raise ValidationFailed("a resize request names its container", field="container")
        require_container_permission(user, container, "resize")
        wanted = {
            "cores": cores,
            "memory_mib": memory_mib,
            "swap_mib": swap_mib,
            "disk_gib": disk_gib,
        }
        if all(v is None for v in wanted.values()):
            raise ValidationFailed("ask for more cores, memory, swap or disk", field="cores")
        if disk_gib is not None and disk_gib < container.disk_gib:
            raise ValidationFailed("disks only grow", field="disk_gib")
        limits = {}
    else:
        container, cores, memory_mib, swap_mib, disk_gib = None, None, None, None, None
        limits = dict(limits or {})
    row = ResourceRequest(
        user=user,
        kind=kind,
        container=container,
        limits=limits,
        cores=cores,
        memory_mib=memory_mib,
        swap_mib=swap_mib,
        disk_gib=disk_gib,
        reason=reason[:5000],
    )
    from django.core.exceptions import ValidationError

    try:
        row.full_clean()
    except ValidationError as exc:
        raise ValidationFailed("; ".join(exc.messages)) from exc
    with transaction.atomic():
        if ResourceRequest.objects.filter(
            user=user, status=RequestStatus.PENDING, kind=kind, container=container
        ).exists():
            raise Conflict(
                "a request like this is already waiting for staff", code="request_pending"
            )
        row.save(force_insert=True)
        audit_record(
            actor=user,
            action="resource_request.create",
            obj=row,
            summary=f"asked for {_describe(row)}",
            changes={
                "kind": kind,
                "limits": limits,
                **{k: v for k, v in _size(row).items() if v is not None},
            },
        )
    return row


def _size(row: ResourceRequest) -> dict[str, int | None]:
    return {
        "cores": row.cores,
        "memory_mib": row.memory_mib,
        "swap_mib": row.swap_mib,
        "disk_gib": row.disk_gib,
    }


def _describe(row: ResourceRequest) -> str:
    if row.kind == RequestKind.QUOTA:
        return "quota " + limits_text(row.limits)
    size = ", ".join(f"{k}={v}" for k, v in _size(row).items() if v is not None)
    return f"{row.container.hostname if row.container else 'a container'} with {size}"


def _decide(request: ResourceRequest, status: str, actor: User, note: str) -> None:
    updated = ResourceRequest.objects.filter(pk=request.pk, status=RequestStatus.PENDING).update(
        status=status, decided_by=actor, decided_at=timezone.now(), decision_note=note[:500]
    )
    if not updated:
        request.refresh_from_db()
        raise InvalidState(f"this request was already {request.status}", code="invalid_state")
    request.refresh_from_db()


def resource_request_approve(
    *, request: ResourceRequest, actor: User, note: str = ""
) -> ResourceRequest:
    """Approve and apply: a quota override, and for a resize also the resize job."""
    from containers.services import container_resize

    from .quotas import effective_limits, usage_for

    require_staff(actor, "decide resource requests")
    with transaction.atomic():
        _decide(request, RequestStatus.APPROVED, actor, note)
        user = request.user
        outcome: list[str] = []
        if request.kind == RequestKind.QUOTA:
            override = quota_override_create(
                user=user,
                actor=actor,
                reason=f"resource request #{request.pk}: {request.reason}",
                limits={k: int(v) for k, v in request.limits.items()},
                request=request,
            )
            request.override = override
            outcome.append(f"your quota now allows {_describe(request).removeprefix('quota ')}")
        else:
            c = request.container
            if c is None or not c.is_live:
                raise InvalidState("the container of this request is gone", code="invalid_state")
            new = {
                "cores": request.cores or c.cores,
                "memory_mib": request.memory_mib or c.memory_mib,
                "swap_mib": c.swap_mib if request.swap_mib is None else request.swap_mib,
                "disk_gib": request.disk_gib or c.disk_gib,
            }
            usage, sizes = usage_for(c.owner)
            limits = effective_limits(c.owner)
            old = sizes.get(c.pk)
            raise_to: dict[str, int] = {}
            for measure, total_f, one_f in (
                ("cores", "max_cores", "max_container_cores"),
                ("memory_mib", "max_memory_mib", "max_container_memory_mib"),
                ("swap_mib", "max_swap_mib", "max_container_swap_mib"),
                ("disk_gib", "max_disk_gib", "max_container_disk_gib"),
            ):
                value = new[measure]
                before = getattr(old, measure) if old else 0
                total = getattr(usage, measure) - before + value
                if limits[total_f].value is not None and total > limits[total_f].value:
                    raise_to[total_f] = total
                if limits[one_f].value is not None and value > limits[one_f].value:  # type: ignore[operator]
                    raise_to[one_f] = value
            if raise_to:
                request.override = quota_override_create(
                    user=c.owner,
                    actor=actor,
                    reason=f"resource request #{request.pk}: {request.reason}",
                    limits=raise_to,
                    request=request,
                )
                outcome.append(f"your quota now allows {limits_text(raise_to)}")
            job = container_resize(container=c, actor=actor, **new)
            request.job = job
            outcome.append(f"{c.hostname} is being resized")
        request.outcome = ("approved: " + "; ".join(outcome))[:500]
        request.save(update_fields=["override", "job", "outcome"])
        audit_record(
            actor=actor,
            action="resource_request.approve",
            obj=request,
            summary=f"approved #{request.pk} of {user.get_username()} ({_describe(request)})",
            changes={"note": note, "outcome": request.outcome},
        )
    return request


def resource_request_deny(
    *, request: ResourceRequest, actor: User, note: str = ""
) -> ResourceRequest:
    require_staff(actor, "decide resource requests")
    with transaction.atomic():
        _decide(request, RequestStatus.DENIED, actor, note)
        request.outcome = ("denied" + (f": {note}" if note else ""))[:500]
        request.save(update_fields=["outcome"])
        audit_record(
            actor=actor,
            action="resource_request.deny",
            obj=request,
            summary=f"denied #{request.pk} of {request.user.get_username()} ({_describe(request)})",
            changes={"note": note},
        )
    return request


def resource_request_cancel(*, request: ResourceRequest, actor: User) -> ResourceRequest:
    if request.user_id != actor.pk:
        raise NotFound(f"no resource request {request.pk}")
    with transaction.atomic():
        _decide(request, RequestStatus.CANCELLED, actor, "")
        request.outcome = "cancelled by its author"
        request.save(update_fields=["outcome"])
        audit_record(
            actor=actor,
            action="resource_request.cancel",
            obj=request,
            summary=f"cancelled #{request.pk}",
        )
    return request
