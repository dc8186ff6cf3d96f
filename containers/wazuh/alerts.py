"""The disconnection alert, checked after each status poll (containers/wazuh/poll.py).

A running container whose agent the manager reports `disconnected` for longer than the
site's `WazuhManager.disconnect_alert_minutes` raises a `ContainerAlert` of kind
`wazuh_agent` (the noisy-neighbour alerts' model, containers/metrics/models.py), and the
owner and the operators are told (`notify`, kind `alert`). The time is the poll's clock
(`now`) against the agent's last keep-alive, so an agent found long silent is raised at
once; one whose keep-alive is unknown counts from the first poll that saw it disconnected.

The alert is cleared, and they are told, when the agent is active again, or when the
container is no longer running (a stopped container's agent is expected to be silent). An
agent that is missing, pending or never connected leaves its alert as it is; the alert of
a container whose agent is no longer polled (deleted, being removed) is closed quietly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.db import transaction

from auth.notification_models import NotificationKind
from auth.notifications import notify

from ..metrics.models import AlertKind, ContainerAlert
from ..models import Container, ContainerStatus
from .models import AgentStatus, WazuhManager

if TYPE_CHECKING:
    from .poll import AgentRow

KIND = AlertKind.WAZUH_AGENT


@dataclass
class DisconnectReport:
    pending: int = 0
    raised: int = 0
    cleared: int = 0


def _minutes(since: datetime, now: datetime) -> float:
    return max((now - since).total_seconds() / 60, 0.0)


def evaluate_disconnects(
    rows: Iterable[AgentRow], *, manager: WazuhManager, now: datetime
) -> DisconnectReport:
    """Move each container's disconnection alert on from this poll's rows. Reads the site's
    open alerts of this kind in one query; writes only what changes."""
    threshold = timedelta(minutes=manager.disconnect_alert_minutes)
    active = {
        a.container_id: a
        for a in ContainerAlert.objects.filter(
            container__site_id=manager.site_id, kind=KIND, cleared_at__isnull=True
        )
    }
    report = DisconnectReport()
    seen: set[int] = set()
    for row in rows:
        if row.container_id is None:
            continue
        seen.add(row.container_id)
        alert = active.get(row.container_id)
        running = row.container_status == ContainerStatus.RUNNING
        if running and row.status == AgentStatus.DISCONNECTED:
            _holds(row, alert, threshold, now, report)
        elif alert is not None and (row.status == AgentStatus.ACTIVE or not running):
            _ended(alert, now, report, why="reconnected" if running else "not running")
    for container_id, alert in active.items():
        if container_id not in seen:  # no longer watched: nothing to tell anyone
            _ended(alert, now, report, why="", quiet=True)
    return report


def _holds(
    row: AgentRow,
    alert: ContainerAlert | None,
    threshold: timedelta,
    now: datetime,
    report: DisconnectReport,
) -> None:
    assert row.container_id is not None
    since = row.last_keepalive or (alert.since if alert else now)
    message = f"its security agent {row.name} has not reported since {since:%Y-%m-%d %H:%M} UTC"
    if alert is None:
        alert = ContainerAlert(container_id=row.container_id, kind=KIND, since=since)
        report.pending += 1
    alert.since, alert.message = since, message
    alert.value = _minutes(since, now)
    with transaction.atomic():
        if alert.raised_at is None and now - since >= threshold:
            alert.raised_at = now
            alert.save()
            _notify(alert, raised=True, threshold=threshold)
            report.raised += 1
        else:
            alert.save()


def _ended(
    alert: ContainerAlert, now: datetime, report: DisconnectReport, *, why: str, quiet: bool = False
) -> None:
    if alert.raised_at is None:
        alert.delete()  # never raised: nothing to take back
        return
    alert.cleared_at = now
    with transaction.atomic():
        alert.save(update_fields=["cleared_at"])
        if not quiet:
            _notify(alert, raised=False, why=why)
    report.cleared += 1


def _notify(
    alert: ContainerAlert, *, raised: bool, threshold: timedelta | None = None, why: str = ""
) -> None:
    container = Container.objects.select_related("owner", "site").get(pk=alert.container_id)
    where = f"{container.hostname} (CT {container.vmid} on {container.site.slug})"
    if raised:
        assert threshold is not None
        subject = f"[alert] {container.hostname}: security agent disconnected"
        text = (
            f"{where}: {alert.message}, more than {threshold.total_seconds() / 60:g} minutes "
            "ago.\nIts logs are not reaching the security monitoring (Wazuh) meanwhile: "
            "check that the container runs and that its wazuh-agent service is started."
        )
    else:
        subject = f"[alert cleared] {container.hostname}: security agent disconnected"
        ended = "the agent is active again" if why == "reconnected" else "it is no longer running"
        text = f"{where}: the security agent's disconnection has ended ({ended})."
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
