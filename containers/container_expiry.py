"""Container expiry: a container with `expires_at` is stopped then, and deleted a grace
period later unless its owner extends it. Its owner is told before (CONTAINER_EXPIRY_WARN_DAYS,
once per expiry), at the stop, and at the delete.

Invariants:
- The sweep never deletes a running container it did not stop: a delete needs
  `expiry_stopped_at`, set by an earlier sweep, at least CONTAINER_EXPIRY_GRACE_DAYS ago.
  So a stop and a delete never happen in one sweep, and the owner has the whole grace.
- Extending clears the warning and the stop marks: the next expiry is warned again. It
  does not start a container the sweep stopped; its owner does.
- A deployment's container (LaunchPad) is made without `expires_at`: a deployment has its
  own expiry (containers.deployment_expiry), which removes its container.

`containers_sweep` runs daily on beat (`containers.sweep_containers`, with the retention
sweeps of containers.retention) and from `manage.py containers sweep [--dry-run]`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from auth.audit import audit_record
from auth.notification_models import NotificationKind
from auth.notifications import notify
from auth.selectors import require_container_permission
from portal.errors import ErrorCode, InvalidState, PortalError, ValidationFailed

from .models import Container, ContainerStatus
from .services import container_delete, container_stop

if TYPE_CHECKING:
    from django.contrib.auth.models import User

log = logging.getLogger(__name__)
ENDED = (ContainerStatus.DELETING, ContainerStatus.DELETED)
# A create still under way is left alone: it has a job, and nothing to stop yet.
BUSY = (ContainerStatus.PENDING, ContainerStatus.PROVISIONING)


@dataclass
class ExpiryReport:
    warned: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # "name: why"

    def lines(self) -> list[str]:
        return (
            [f"warned {name}" for name in self.warned]
            + [f"stopped {name}" for name in self.stopped]
            + [f"deleted {name}" for name in self.deleted]
            + [f"could not act on {what}" for what in self.failed]
        )


def _when(at: datetime) -> str:
    return f"{timezone.localtime(at):%Y-%m-%d %H:%M %Z}"


def _extend_hint(c: Container) -> str:
    return (
        f"Extend it in the portal, or with: portalctl containers extend {c.hostname} --days N "
        f"(at most {settings.CONTAINER_EXTEND_MAX_DAYS} days from now)."
    )


# -- extending -------------------------------------------------------------------------------
def container_extend(
    *, container: Container, actor: User | None, days: int, now: datetime | None = None
) -> Container:
    """Move the expiry `days` later (from now if it has passed). Owner or staff; an owner
    may go at most CONTAINER_EXTEND_MAX_DAYS from now, staff (and the system) further."""
    require_container_permission(actor, container, "extend")
    now = now or timezone.now()
    if container.status in ENDED:
        raise InvalidState(f"{container.hostname} is {container.status}")
    if container.expires_at is None:
        raise InvalidState(f"{container.hostname} does not expire", code=ErrorCode.NO_EXPIRY)
    if days < 1:
        raise ValidationFailed("extend by at least one day", field="days")
    new = max(container.expires_at, now) + timedelta(days=days)
    limit = now + timedelta(days=settings.CONTAINER_EXTEND_MAX_DAYS)
    if new > limit and not (actor is None or actor.is_staff):
        raise ValidationFailed(
            f"{container.hostname} may be extended to {_when(limit)} at most "
            f"({settings.CONTAINER_EXTEND_MAX_DAYS} days from now); ask staff for longer",
            code=ErrorCode.EXTEND_BEYOND_POLICY,
            field="days",
        )
    with transaction.atomic():
        Container.objects.filter(pk=container.pk).update(
            expires_at=new, expiry_warned_at=None, expiry_stopped_at=None, updated_at=now
        )
        audit_record(
            actor=actor,
            action="container.extend",
            obj=container,
            summary=f"extended {container.hostname} to {_when(new)}",
            changes={"days": days, "expires_at": new.isoformat()},
        )
    container.expires_at, container.expiry_warned_at, container.expiry_stopped_at = new, None, None
    return container


# -- the sweep -------------------------------------------------------------------------------
def containers_sweep(*, now: datetime | None = None, dry_run: bool = False) -> ExpiryReport:
    """Delete what the grace is over for, stop what expired, warn what expires soon."""
    now = now or timezone.now()
    report = ExpiryReport()
    grace = timedelta(days=settings.CONTAINER_EXPIRY_GRACE_DAYS)
    live = (
        Container.objects.filter(expires_at__isnull=False)
        .exclude(status__in=ENDED)
        .select_related("owner", "site")
        .order_by("site_id", "hostname")
    )
    for c in live.filter(expiry_stopped_at__lte=now - grace):
        _delete(c, report, dry_run)
    for c in live.filter(expires_at__lte=now, expiry_stopped_at__isnull=True):
        _stop(c, now, report, dry_run)
    soon = now + timedelta(days=settings.CONTAINER_EXPIRY_WARN_DAYS)
    for c in live.filter(expires_at__gt=now, expires_at__lte=soon, expiry_warned_at__isnull=True):
        report.warned.append(c.hostname)
        if dry_run:
            continue
        if Container.objects.filter(pk=c.pk, expiry_warned_at__isnull=True).update(
            expiry_warned_at=now
        ):
            assert c.expires_at is not None
            _tell(
                c,
                "warning",
                f"{c.hostname} expires on {_when(c.expires_at)}",
                f"Your container {c.hostname} ({c.fqdn}) expires on {_when(c.expires_at)}. "
                f"It is then stopped, and deleted {settings.CONTAINER_EXPIRY_GRACE_DAYS} days "
                f"later.\n\n{_extend_hint(c)}\n",
            )
    return report


def _stop(c: Container, now: datetime, report: ExpiryReport, dry_run: bool) -> None:
    if c.status in BUSY:
        report.failed.append(f"{c.hostname}: its create is still under way")
        return
    if dry_run:
        report.stopped.append(c.hostname)
        return
    if c.status == ContainerStatus.RUNNING:
        try:
            container_stop(container=c, actor=None)
        except PortalError as exc:  # e.g. a job runs right now: the next sweep tries again
            report.failed.append(f"{c.hostname}: {exc.message}")
            return
    if not Container.objects.filter(pk=c.pk, expiry_stopped_at__isnull=True).update(
        expiry_stopped_at=now
    ):
        return
    report.stopped.append(c.hostname)
    deletes = _when(now + timedelta(days=settings.CONTAINER_EXPIRY_GRACE_DAYS))
    _tell(
        c,
        "stopped",
        f"{c.hostname} expired and was stopped",
        f"Your container {c.hostname} ({c.fqdn}) expired and was stopped. It is deleted on "
        f"{deletes} unless you extend it; extended, start it again.\n\n{_extend_hint(c)}\n",
    )


def _delete(c: Container, report: ExpiryReport, dry_run: bool) -> None:
    if dry_run:
        report.deleted.append(c.hostname)
        return
    try:
        container_delete(container=c, actor=None)
    except PortalError as exc:
        report.failed.append(f"{c.hostname}: {exc.message}")
        return
    report.deleted.append(c.hostname)
    _tell(
        c,
        "deleted",
        f"{c.hostname} expired and is being deleted",
        f"Your container {c.hostname} ({c.fqdn}) expired, was not extended within "
        f"{settings.CONTAINER_EXPIRY_GRACE_DAYS} days, and is being deleted.\n",
    )


def _tell(c: Container, event: str, subject: str, text: str) -> None:
    notify(
        kind=NotificationKind.EXPIRY,
        subject=subject,
        text=text,
        users=[c.owner],
        site=c.site,
        data={
            "event": event,
            "container": c.hostname,
            "site": c.site.slug,
            "expires_at": c.expires_at.isoformat() if c.expires_at else None,
        },
    )
