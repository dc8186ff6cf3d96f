"""Preview expiry (LaunchPad): a deployment with a TTL is removed after that many idle days
(each push starts them again; its owner may extend it). Its owner is told a day or so
before (DEPLOY_EXPIRY_WARN_DAYS), once per expiry, through `notify()` (kind `expiry`, as a
container's expiry warning: the owner's preferences and webhook apply).

`deployments_sweep` runs daily on beat (`containers.sweep_deployments`) and from
`manage.py deployments sweep [--dry-run]`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from auth.notification_models import NotificationKind
from auth.notifications import notify
from portal.errors import PortalError

from .deployments import deployment_destroy
from .models import Deployment, DeploymentState

ENDED = (DeploymentState.REMOVING, DeploymentState.REMOVED)


@dataclass
class SweepReport:
    warned: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # "name: why"

    def lines(self) -> list[str]:
        return (
            [f"warned {name}" for name in self.warned]
            + [f"removed {name}" for name in self.removed]
            + [f"could not remove {what}" for what in self.failed]
        )


def deployments_sweep(*, now: datetime | None = None, dry_run: bool = False) -> SweepReport:
    """Warn the owners of deployments that expire soon; remove the expired ones."""
    now = now or timezone.now()
    report = SweepReport()
    live = Deployment.objects.select_related("owner", "container__site").exclude(state__in=ENDED)
    expired = live.filter(expires_at__lte=now)
    soon = live.filter(
        Q(warned_at__isnull=True),
        expires_at__gt=now,
        expires_at__lte=now + timedelta(days=settings.DEPLOY_EXPIRY_WARN_DAYS),
    )
    for deployment in soon:
        report.warned.append(deployment.name)
        if dry_run:
            continue
        # Marked first, by a conditional update: two sweeps at once warn once.
        if Deployment.objects.filter(pk=deployment.pk, warned_at__isnull=True).update(
            warned_at=now
        ):
            _warn(deployment)
    for deployment in expired:
        if dry_run:
            report.removed.append(deployment.name)
            continue
        try:
            deployment_destroy(
                deployment=deployment,
                actor=deployment.owner,
                reason=f"expired after {deployment.ttl_days or '?'} idle days",
            )
        except PortalError as exc:  # e.g. a deploy runs right now: the next sweep tries again
            report.failed.append(f"{deployment.name}: {exc.message}")
        else:
            report.removed.append(deployment.name)
    return report


def _warn(deployment: Deployment) -> None:
    """Tell the owner (kind `expiry`, as for a container's expiry: their preferences and
    webhook apply, and the site's webhook hears of it). notify() queues the mail and the
    webhook calls for after the commit and never raises: a failing mail server or broker
    never stops the sweep."""
    owner = deployment.owner
    assert deployment.expires_at is not None
    when = timezone.localtime(deployment.expires_at)
    container = deployment.container
    site = container.site if container is not None else None
    notify(
        kind=NotificationKind.EXPIRY,
        users=[owner],
        site=site,
        subject=f"{deployment.name} is removed on {when:%Y-%m-%d %H:%M}",
        text=(
            f"The LaunchPad deployment {deployment.name} ({deployment.repository} at "
            f"{deployment.ref}) has not been pushed to for a while and will be removed "
            f"on {when:%Y-%m-%d %H:%M %Z}.\n\nPush to it again, or extend it in the portal "
            f"or with: portalctl deployments extend {deployment.name} --days N\n"
        ),
        data={
            "event": "warning",
            "deployment": deployment.name,
            "repository": deployment.repository,
            "ref": deployment.ref,
            "container": container.hostname if container is not None else None,
            "site": site.slug if site is not None else None,
            "expires_at": deployment.expires_at.isoformat(),
        },
    )
