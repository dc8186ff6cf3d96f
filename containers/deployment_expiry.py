"""Preview expiry (LaunchPad): a deployment with a TTL is removed after that many idle days
(each push starts them again; its owner may extend it). Its owner is told a day or so
before (DEPLOY_EXPIRY_WARN_DAYS), once per expiry.

`deployments_sweep` runs daily on beat (`containers.sweep_deployments`) and from
`manage.py deployments sweep [--dry-run]`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db.models import Q
from django.utils import timezone

from portal.errors import PortalError

from .deployments import deployment_destroy
from .models import Deployment, DeploymentState

log = logging.getLogger(__name__)
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
    live = Deployment.objects.select_related("owner").exclude(state__in=ENDED)
    expired = live.filter(expires_at__lte=now)
    soon = live.filter(
        Q(warned_at__isnull=True),
        expires_at__gt=now,
        expires_at__lte=now + timedelta(days=settings.DEPLOY_EXPIRY_WARN_DAYS),
    )
    for deployment in soon:
        report.warned.append(deployment.name)
        if not dry_run:
            _warn(deployment)
            Deployment.objects.filter(pk=deployment.pk).update(warned_at=now)
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
    owner = deployment.owner
    if not owner.email:
        return
    when = timezone.localtime(deployment.expires_at)
    try:
        send_mail(
            subject=f"{deployment.name} is removed on {when:%Y-%m-%d %H:%M}",
            message=(
                f"The LaunchPad deployment {deployment.name} ({deployment.repository} at "
                f"{deployment.ref}) has not been pushed to for a while and will be removed "
                f"on {when:%Y-%m-%d %H:%M %Z}.\n\nPush to it again, or extend it in the portal "
                f"or with: portalctl deployments extend {deployment.name} --days N\n"
            ),
            from_email=None,
            recipient_list=[owner.email],
        )
    except Exception:  # a failing mail server never stops the sweep
        log.exception("could not warn %s about %s", owner.get_username(), deployment.name)
