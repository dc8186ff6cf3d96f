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
see, or whose pressure could not be read, keeps its alerts as they are; a deleted one's
are closed without a word.

The writes of a poll are bulk: a fixed number of statements whatever the number of
containers or alerts (`plan_alerts` decides without I/O, `_write` writes).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F

from auth.notification_models import NotificationKind
from auth.notifications import Notice, notify_each

from ..models import Container, ContainerStatus
from ..proxmox import ProxmoxClient, ProxmoxError, ProxmoxUnavailable
from .models import OPEN_ALERT, AlertKind, ContainerAlert

if TYPE_CHECKING:
    from networking.models import Site

log = logging.getLogger(__name__)

PRESSURE_FIELD = "pressurememorysome"
# What a poll rewrites of an alert that still holds (in this order: _update_figures).
UPDATED = ("value", "message", "raised_at")
# What `alert_notice` reads of a container (its wide text columns are left in the table).
NOTICE_FIELDS = ("hostname", "vmid", "site", "owner")


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

    Proxmox is asked first (pressure, near-limit containers only), outside any transaction.
    Then, in one transaction, a fixed number of queries whatever the number of containers
    or alerts: the site's active alerts, read and locked (one query, by site rather than a
    list of 10,000 ids), then at most one bulk insert (new pending rows), one bulk update
    (figures, and `raised_at` for those raised now), one update (`cleared_at`) and one
    delete (pending rows that ended), and the notifications of all the raised and cleared
    at once (`notify_each`: the containers and the recipients in a fixed number of reads),
    queued when the transaction commits."""
    samples = list(samples)
    findings = [cpu_finding(s) for s in samples] + memory_findings(samples)
    with transaction.atomic():
        plan = plan_alerts(findings, _active_alerts(site), now)
        _write(plan, now)
        _notify_all(plan, site)
    return plan.report


def _active_alerts(site: Site) -> list[ContainerAlert]:
    """The site's pending and open alerts, with their container's status, locked until the
    poll's writes commit: a poll that overlaps another waits here, then sees what the first
    one wrote."""
    qs = (
        ContainerAlert.objects.filter(container__site=site, cleared_at__isnull=True)
        .annotate(container_status=F("container__status"))
        .order_by("pk")
    )
    return list(qs.select_for_update(of=("self",)))


@dataclass
class AlertPlan:
    """What one poll changes; `plan_alerts` makes it without I/O."""

    create: list[ContainerAlert] = field(default_factory=list)  # new pending rows
    update: list[ContainerAlert] = field(default_factory=list)  # still holding: new figures
    raised: list[ContainerAlert] = field(default_factory=list)  # in `update`; raised now
    cleared: list[ContainerAlert] = field(default_factory=list)  # ended: cleared, told
    retired: list[ContainerAlert] = field(default_factory=list)  # container gone: cleared quietly
    dropped: list[ContainerAlert] = field(default_factory=list)  # pending, ended: deleted

    @property
    def report(self) -> AlertReport:
        return AlertReport(
            pending=len(self.create), raised=len(self.raised), cleared=len(self.cleared)
        )


def plan_alerts(
    findings: Iterable[Finding], active: Iterable[ContainerAlert], now: datetime
) -> AlertPlan:
    """Move each alert on by this poll's findings (an unknown finding changes nothing).

    An active alert of a container that is deleted is closed without a word: nobody is
    left to tell, and it must not stay open (and counted) for ever."""
    plan = AlertPlan()
    by_key: dict[tuple[int, str], ContainerAlert] = {}
    for row in active:
        if getattr(row, "container_status", None) == ContainerStatus.DELETED:
            (plan.retired if row.raised_at is not None else plan.dropped).append(row)
        else:
            by_key[(row.container_id, row.kind)] = row
    hold_for = timedelta(minutes=settings.ALERT_FOR_MINUTES)
    for f in findings:
        if f.holds is None:
            continue
        alert = by_key.get((f.container_id, f.kind))
        if f.holds and alert is None:
            plan.create.append(
                ContainerAlert(
                    container_id=f.container_id,
                    kind=f.kind,
                    since=now,
                    value=f.value,
                    message=f.message,
                )
            )
        elif f.holds and alert is not None:
            alert.value, alert.message = f.value, f.message
            if alert.raised_at is None and now - alert.since >= hold_for:
                alert.raised_at = now
                plan.raised.append(alert)
            plan.update.append(alert)
        elif alert is not None:
            (plan.cleared if alert.raised_at is not None else plan.dropped).append(alert)
    for alert in plan.cleared + plan.retired:
        alert.cleared_at = now
    return plan


def _write(plan: AlertPlan, now: datetime) -> None:
    """The plan's writes: each kind of change in one statement (SQLite's variable limit may
    split a bulk write of hundreds of rows in batches; PostgreSQL's never does)."""
    if plan.create:
        # A poll that overlapped this one may have made the same pending row: keep its.
        ContainerAlert.objects.bulk_create(plan.create, ignore_conflicts=True)
    if plan.update:  # the rows are locked: what was read is what is written back
        _update_figures(plan.update)
    closed = plan.cleared + plan.retired
    if closed:
        ContainerAlert.objects.filter(pk__in=[a.pk for a in closed]).update(cleared_at=now)
    if plan.dropped:
        ContainerAlert.objects.filter(pk__in=[a.pk for a in plan.dropped]).delete()


def _update_figures(alerts: list[ContainerAlert]) -> None:
    """`value`, `message` and `raised_at` of each alert in ONE statement. On PostgreSQL an
    UPDATE ... FROM UNNEST(arrays): bulk_update's CASE per row took 17 s for 10,000 rows
    there (each row scans the whole CASE), this takes milliseconds. Elsewhere bulk_update."""
    if connection.vendor != "postgresql":
        ContainerAlert.objects.bulk_update(alerts, UPDATED)
        return
    qn = connection.ops.quote_name
    table = qn(ContainerAlert._meta.db_table)
    sets = ", ".join(f"{qn(name)} = v.{qn(name)}" for name in UPDATED)
    names = ", ".join(qn(name) for name in ("id", *UPDATED))
    arrays = "%s::bigint[], %s::double precision[], %s::text[], %s::timestamptz[]"
    # Names come from the model and values are bound: nothing from outside is spliced in.
    sql = (
        f"UPDATE {table} SET {sets} FROM UNNEST({arrays}) AS v({names})"  # noqa: S608
        f" WHERE {table}.{qn('id')} = v.{qn('id')}"
    )
    columns: list[list[Any]] = [
        [a.pk for a in alerts],
        [a.value for a in alerts],
        [a.message for a in alerts],
        [a.raised_at for a in alerts],
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, columns)


def _notify_all(plan: AlertPlan, site: Site) -> None:
    """The owner and the operators hear of each raised and cleared alert (kind `alert`):
    one read of the containers (only what a notice names), then `notify_each`."""
    told = [(a, True) for a in plan.raised] + [(a, False) for a in plan.cleared]
    if not told:
        return
    containers = (
        Container.objects.filter(site=site, pk__in=[a.container_id for a, _ in told])
        .select_related("owner")
        .only(*NOTICE_FIELDS)
        .in_bulk()
    )
    notices = []
    for alert, raised in told:
        container = containers.get(alert.container_id)
        if container is None:  # deleted since (its alerts go with it)
            continue
        container.site = site
        notices.append(alert_notice(alert, container, raised=raised))
    notify_each(kind=NotificationKind.ALERT, notices=notices)


def alert_notice(alert: ContainerAlert, container: Container, *, raised: bool) -> Notice:
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
    return Notice(
        subject=subject,
        text=text,
        users=(container.owner,),
        operators=True,
        site=container.site,
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
    return list(ContainerAlert.objects.filter(OPEN_ALERT, container=container).order_by("kind"))
