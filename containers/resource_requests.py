"""Resource requests: a user asks staff for more quota, or for one container to grow.

Staff approve (which grants the quota override and, for a container, starts its resize),
or deny; the author may cancel while it waits. Keyword-only, typed, atomic, domain errors
only; each write records its audit entry here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from auth.audit import audit_record
from auth.models import RequestKind, RequestStatus, ResourceRequest, limits_text
from auth.notification_models import NotificationKind
from auth.notifications import notify
from auth.quota_overrides import quota_override_create
from auth.selectors import require_container_permission, require_staff
from portal.errors import Conflict, ErrorCode, InvalidState, NotFound, ValidationFailed

from . import quotas
from .resources import Resources
from .services import container_resize

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from .models import Container


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
    try:
        row.full_clean()
    except ValidationError as exc:
        raise ValidationFailed("; ".join(exc.messages)) from exc
    with transaction.atomic():
        if ResourceRequest.objects.filter(
            user=user, status=RequestStatus.PENDING, kind=kind, container=container
        ).exists():
            raise Conflict(
                "a request like this is already waiting for staff", code=ErrorCode.REQUEST_PENDING
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
        raise InvalidState(f"this request was already {request.status}")
    request.refresh_from_db()


def resource_request_approve(
    *, request: ResourceRequest, actor: User, note: str = ""
) -> ResourceRequest:
    """Approve and apply: a quota override, and for a resize also the resize job."""
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
                raise InvalidState("the container of this request is gone")
            new = Resources.of(c).replaced(
                cores=request.cores or None,
                memory_mib=request.memory_mib or None,
                swap_mib=request.swap_mib,
                disk_gib=request.disk_gib or None,
            )
            # What the resize needs that the owner's quota does not allow, raised for them.
            raise_to = {e.limit: e.needed for e in quotas.excess(c.owner, new=new, current=c)}
            if raise_to:
                request.override = quota_override_create(
                    user=c.owner,
                    actor=actor,
                    reason=f"resource request #{request.pk}: {request.reason}",
                    limits=raise_to,
                    request=request,
                )
                outcome.append(f"your quota now allows {limits_text(raise_to)}")
            job = container_resize(container=c, actor=actor, **new.as_params())
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
        _tell(request)
    return request


def _tell(request: ResourceRequest) -> None:
    """Its author hears the decision (on commit; never fails the decision)."""
    container = request.container
    notify(
        kind=NotificationKind.RESOURCE_REQUEST,
        subject=f"Your resource request #{request.pk} was {request.status}",
        text=f"Your request for {_describe(request)} was {request.outcome}.\n"
        + (
            f"\nNote from {request.decided_by}: {request.decision_note}\n"
            if request.decision_note
            else ""
        ),
        users=[request.user],
        site=container.site if container is not None else None,
        data={
            "request": request.pk,
            "status": request.status,
            "outcome": request.outcome,
            "container": container.hostname if container is not None else None,
        },
    )


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
        _tell(request)
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
