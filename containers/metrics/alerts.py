"""Noisy-neighbour alerts, checked after each metrics poll.

One container thrashing its memory can load a whole node, so the portal watches two
conditions on the latest samples:

- memory: used / limit >= ALERT_MEMORY_FRACTION and PSI memory "some" avg10 >=
  ALERT_MEMORY_PRESSURE (%). The bulk resources call carries no pressure figures, so
  `status/current` is read for the containers near their limit only (a handful), never for
  the fleet;
- cpu: the CT's CPU (a fraction of its cores) >= ALERT_CPU_FRACTION.

A condition must hold ALERT_FOR_MINUTES (by the poll's clock, `now`) before the alert is
raised: the first sight makes a pending row (`since`), a later poll raises it. A pending
row whose condition ends is deleted; an open alert is closed (`cleared_at`). Raising and
clearing notify the owner and the operators (kind `alert`). A container the poll did not
see, or whose pressure could not be read, keeps its alerts as they are.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from django.conf import settings
from django.db import transaction

from auth.notification_models import NotificationKind
from auth.notifications import notify

from ..models import Container
from ..proxmox import ProxmoxClient, ProxmoxError, ProxmoxUnavailable
from .models import AlertKind, ContainerAlert

if TYPE_CHECKING:
    from networking.models import Site

log = logging.getLogger(__name__)

PRESSURE_FIELD = "pressurememorysome"


class Sample(Protocol):
    """What the check needs of a sample (poll.SampleRow or a ContainerSample)."""

    @property
    def container_id(self) -> int: ...
    @property
    def pve_status(self) -> str: ...
    @property
    def cpu(self) -> float: ...
    @property
    def mem(self) -> int: ...
    @property
    def maxmem(self) -> int: ...


@dataclass(frozen=True)
class Finding:
    """One condition's state for one container at this poll: `holds` None = unknown."""

    container_id: int
    kind: str
    holds: bool | None
    value: float
    message: str = ""


@dataclass
class AlertReport:
    pending: int = 0
    raised: int = 0
    cleared: int = 0


def memory_fraction(s: Sample) -> float:
    return s.mem / s.maxmem if s.maxmem > 0 else 0.0


def cpu_finding(s: Sample) -> Finding:
    running = s.pve_status == "running"
    holds = running and s.cpu >= settings.ALERT_CPU_FRACTION
    message = f"CPU at {s.cpu:.0%} of its cores" if holds else ""
    return Finding(s.container_id, AlertKind.CPU, holds, s.cpu, message)


def memory_findings(samples: Iterable[Sample]) -> list[Finding]:
    """Memory findings; pressure is read (one call each) only for those near their limit."""
    out: list[Finding] = []
    near: dict[int, float] = {}
    for s in samples:
        fraction = memory_fraction(s)
        if s.pve_status == "running" and fraction >= settings.ALERT_MEMORY_FRACTION:
            near[s.container_id] = fraction
        else:
            out.append(Finding(s.container_id, AlertKind.MEMORY, False, fraction))
    if not near:
        return out
    for container in Container.objects.filter(pk__in=near).select_related("node"):
        fraction = near[container.pk]
        pressure = memory_pressure(container)
        if pressure is None:
            out.append(Finding(container.pk, AlertKind.MEMORY, None, fraction))
            continue
        holds = pressure >= settings.ALERT_MEMORY_PRESSURE
        message = (
            f"memory at {fraction:.0%} of its limit, memory pressure {pressure:g}%" if holds else ""
        )
        out.append(Finding(container.pk, AlertKind.MEMORY, holds, fraction, message))
    return out


def memory_pressure(container: Container) -> float | None:
    """PSI memory "some" avg10 (%) from status/current; None when it cannot be read."""
    node = container.node
    try:
        status = ProxmoxClient.for_node(node).container_status(node.name, container.vmid)
    except (ProxmoxError, ProxmoxUnavailable) as exc:
        log.info("alerts: no pressure for %s: %s", container, exc)
        return None
    try:
        return float(status.get(PRESSURE_FIELD) or 0.0)
    except (TypeError, ValueError):
        return None


def evaluate_alerts(samples: Iterable[Sample], *, site: Site, now: datetime) -> AlertReport:
    """Check a site's poll's samples and move each alert on; called at the end of a poll.

    Reads: the site's active alerts (one query, by site rather than a list of 10,000 ids),
    and the near-limit containers when there are any; writes only what changes."""
    samples = list(samples)
    findings = [cpu_finding(s) for s in samples] + memory_findings(samples)
    active = {
        (a.container_id, a.kind): a
        for a in ContainerAlert.objects.filter(container__site=site, cleared_at__isnull=True)
    }
    report = AlertReport()
    for finding in findings:
        if finding.holds is None:
            continue
        alert = active.get((finding.container_id, finding.kind))
        if finding.holds:
            _holds(finding, alert, now, report)
        elif alert is not None:
            _ended(alert, now, report)
    return report


def _holds(f: Finding, alert: ContainerAlert | None, now: datetime, r: AlertReport) -> None:
    if alert is None:
        ContainerAlert.objects.create(
            container_id=f.container_id, kind=f.kind, since=now, value=f.value, message=f.message
        )
        r.pending += 1
        return
    alert.value, alert.message = f.value, f.message
    if alert.raised_at is None and now - alert.since >= timedelta(
        minutes=settings.ALERT_FOR_MINUTES
    ):
        alert.raised_at = now
        with transaction.atomic():
            alert.save(update_fields=["value", "message", "raised_at"])
            _notify(alert, raised=True)
        r.raised += 1
        return
    alert.save(update_fields=["value", "message"])


def _ended(alert: ContainerAlert, now: datetime, r: AlertReport) -> None:
    if alert.raised_at is None:
        alert.delete()  # never raised: nothing to take back
        return
    alert.cleared_at = now
    with transaction.atomic():
        alert.save(update_fields=["cleared_at"])
        _notify(alert, raised=False)
    r.cleared += 1


def _notify(alert: ContainerAlert, *, raised: bool) -> None:
    container = Container.objects.select_related("owner", "site").get(pk=alert.container_id)
    label = AlertKind(alert.kind).label
    if raised:
        subject = f"[alert] {container.hostname}: {label}"
        text = (
            f"{container.hostname} (CT {container.vmid} on {container.site.slug}): "
            f"{alert.message}, for {settings.ALERT_FOR_MINUTES:g} minutes or more.\n"
            f"It may slow down the other containers of its node."
        )
    else:
        subject = f"[alert cleared] {container.hostname}: {label}"
        text = f"{container.hostname} (CT {container.vmid}): {label} has ended."
    notify(
        kind=NotificationKind.ALERT,
        users=[container.owner],
        operators=True,
        site=container.site,
        subject=subject,
        text=text,
        data={
            "alert": alert.pk,
            "container": container.pk,
            "vmid": container.vmid,
            "kind": alert.kind,
            "state": "raised" if raised else "cleared",
            "value": alert.value,
            "since": alert.since.isoformat(),
        },
    )


def open_alerts(container: Container) -> list[ContainerAlert]:
    """A container's raised, not cleared alerts (for its page)."""
    return list(
        ContainerAlert.objects.filter(
            container=container, raised_at__isnull=False, cleared_at__isnull=True
        ).order_by("kind")
    )
