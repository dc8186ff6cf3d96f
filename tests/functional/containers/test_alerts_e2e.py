"""Alerts against the simulator over HTTPS: a container under memory pressure is polled
with the test's clock; the alert is raised after ALERT_FOR_MINUTES, mailed (locmem) and
posted to a loopback webhook, and cleared when the pressure ends.

The simulator is the session's: the test seeds its own guests (far above the portal's
VMIDs) and removes them after.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from auth.notifications import webhook_set
from containers.metrics.models import AlertKind, ContainerAlert
from containers.metrics.poll import metrics_poll_site
from containers.models import Container
from tests.conftest import IN_CI
from tests.factories import UserFactory, make_containers

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

FIRST = 62_000
COUNT = 4
MIB = 1 << 20


@pytest.fixture
def fleet(cluster: Any, sim: Any, settings: Any) -> Iterator[list[Container]]:
    settings.ALERT_MEMORY_FRACTION = 0.9
    settings.ALERT_MEMORY_PRESSURE = 10
    settings.ALERT_CPU_FRACTION = 0.95
    settings.ALERT_FOR_MINUTES = 5
    vmids = range(FIRST, FIRST + COUNT)
    sim.admin.remove_guests(vmids)
    sim.admin.create_foreign_guests(
        {"node": "pve1" if v % 2 else "pve2", "vmid": v, "status": "running", "memory": 512}
        for v in vmids
    )
    yield make_containers(cluster, COUNT, first_vmid=FIRST)
    sim.admin.remove_guests(vmids)


def test_memory_pressure_raises_notifies_and_clears(
    cluster: Any, sim: Any, fleet: list[Container], deliver_now: Any, webhook_receiver: Any
) -> None:
    operator = UserFactory(username="op", email="op@example.org", is_staff=True)
    webhook_set(site=cluster, url=webhook_receiver.url, actor=operator)
    noisy = fleet[0]
    owner_mail = noisy.owner.email
    sim.admin.set_guest_usage(noisy.vmid, values={"mem": 490 * MIB, "pressurememorysome": 42.5})
    t0 = timezone.now()

    def poll(minutes: float) -> None:
        metrics_poll_site(site=cluster, now=t0 + timedelta(minutes=minutes))

    sim.admin.reset_request_counts()
    poll(0)
    # Pressure was read for the one CT near its limit, not for the others.
    status_calls = {
        p: n for p, n in sim.admin.request_counts().items() if p.endswith("/status/current")
    }
    assert status_calls == {f"GET /nodes/{noisy.node.name}/lxc/{noisy.vmid}/status/current": 1}
    assert not ContainerAlert.objects.filter(raised_at__isnull=False).exists()
    poll(2.5)
    assert not ContainerAlert.objects.filter(raised_at__isnull=False).exists()
    assert mail.outbox == [] and webhook_receiver.requests == []

    poll(5)
    alert = ContainerAlert.objects.get(container=noisy)
    assert (alert.kind, alert.since, alert.raised_at) == (
        AlertKind.MEMORY,
        t0,
        t0 + timedelta(minutes=5),
    )
    assert "memory pressure 42.5%" in alert.message
    assert sorted(m.to[0] for m in mail.outbox) == sorted([owner_mail, "op@example.org"])
    assert all(noisy.hostname in m.subject for m in mail.outbox)
    assert len(webhook_receiver.requests) == 1
    body = json.loads(webhook_receiver.requests[0][1])
    assert body["kind"] == "alert" and body["data"]["state"] == "raised"
    assert body["data"]["vmid"] == noisy.vmid

    # The pressure ends: the alert clears itself, and that is said too.
    sim.admin.clear_guest_usage(noisy.vmid)
    poll(6)
    alert.refresh_from_db()
    assert alert.cleared_at == t0 + timedelta(minutes=6)
    assert len(mail.outbox) == 4 and all("cleared" in m.subject for m in mail.outbox[2:])
    assert len(webhook_receiver.requests) == 2
    assert json.loads(webhook_receiver.requests[1][1])["data"]["state"] == "cleared"
    assert not ContainerAlert.objects.filter(cleared_at__isnull=True).exists()


# -- many at once, and polls that overlap (PostgreSQL in CI) ---------------------------------
MANY_FIRST = 62_100
MANY = 40


@pytest.fixture
def crowd(cluster: Any, sim: Any, settings: Any) -> Iterator[list[Container]]:
    settings.ALERT_CPU_FRACTION = 0.95
    settings.ALERT_FOR_MINUTES = 5
    vmids = range(MANY_FIRST, MANY_FIRST + MANY)
    sim.admin.remove_guests(vmids)
    sim.admin.create_foreign_guests(
        {"node": "pve1" if v % 2 else "pve2", "vmid": v, "status": "running", "memory": 512}
        for v in vmids
    )
    yield make_containers(cluster, MANY, first_vmid=MANY_FIRST)
    sim.admin.remove_guests(vmids)


def pinned(sim: Any, containers: list[Container], cpu: float) -> None:
    for c in containers:
        sim.admin.set_guest_usage(c.vmid, values={"cpu": cpu})


def test_a_crowd_of_alerts_costs_the_poll_what_one_does(
    cluster: Any, sim: Any, crowd: list[Container], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the real poll: 2 noisy containers, then all 40; each phase (pending, raised,
    held, cleared) sends the same statements and one resources call, whatever the count."""
    from auth import notifications

    queued: list[tuple[str, int, dict[str, Any]]] = []
    monkeypatch.setattr(notifications, "enqueue_delivery", lambda *args: queued.append(args))
    UserFactory(username="op", email="op@example.org", is_staff=True)
    t0 = timezone.now()

    def phase(minutes: float) -> list[str]:
        with CaptureQueriesContext(connection) as seen:
            metrics_poll_site(site=cluster, now=t0 + timedelta(minutes=minutes))
        return [q["sql"].lstrip()[:6].upper() for q in seen.captured_queries]

    def cycle(noisy: list[Container], start: float) -> list[list[str]]:
        pinned(sim, noisy, 1.0)
        sim.admin.reset_request_counts()
        phases = [phase(start), phase(start + 5), phase(start + 6)]
        pinned(sim, noisy, 0.1)
        phases.append(phase(start + 7))
        calls = sim.admin.request_counts()
        assert calls == {"GET /cluster/resources": 4}, calls  # no call per container
        return phases

    two = cycle(crowd[:2], 0)
    assert len(queued) == 2 * 2 * 2
    everyone = cycle(crowd, 10)
    assert everyone == two
    assert len(queued) == 8 + 2 * 2 * MANY
    raised = ContainerAlert.objects.filter(raised_at=t0 + timedelta(minutes=15))
    assert raised.count() == MANY and all(a.cleared_at is not None for a in raised)
    if connection.vendor == "postgresql":
        # The figures of every held alert: one UPDATE ... FROM UNNEST, not a CASE per row.
        with CaptureQueriesContext(connection) as seen:
            pinned(sim, crowd, 1.0)
            metrics_poll_site(site=cluster, now=t0 + timedelta(minutes=20))
            metrics_poll_site(site=cluster, now=t0 + timedelta(minutes=21))
        updates = [q["sql"] for q in seen.captured_queries if q["sql"].startswith("UPDATE")]
        assert len(updates) == 1 and "UNNEST" in updates[0] and "CASE" not in updates[0]


def test_overlapping_polls_raise_and_tell_once(
    cluster: Any, sim: Any, crowd: list[Container], deliver_now: Any
) -> None:
    """Two polls of a site at once (a slow one and the next beat): the second waits on the
    first's locked alert rows, then sees what it wrote. One pending row each, one raise,
    one notification per recipient. Row locks and ON CONFLICT are PostgreSQL's here."""
    if connection.vendor != "postgresql":
        message = "overlapping polls need PostgreSQL's row locks: set DATABASE_URL"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    UserFactory(username="op", email="op@example.org", is_staff=True)
    noisy = crowd[:3]
    pinned(sim, noisy, 1.0)
    t0 = timezone.now()
    reports = overlapping(cluster, t0)  # both see the condition first: both insert
    assert ContainerAlert.objects.filter(container__in=noisy).count() == 3
    # Both planned the rows; the second's inserts waited for the first's, then were skipped.
    assert [r.pending for r in reports] == [3, 3]
    reports = overlapping(cluster, t0 + timedelta(minutes=5))
    assert sorted(r.raised for r in reports) == [0, 3]
    assert ContainerAlert.objects.filter(raised_at__isnull=False).count() == 3
    assert sorted(m.to[0] for m in mail.outbox) == sorted(
        [c.owner.email for c in noisy] + ["op@example.org"] * 3
    )


def overlapping(site: Any, now: Any) -> list[Any]:
    """Poll `site` twice at once: the first holds its transaction open after its writes
    until the second is seen waiting; returns both AlertReports."""
    from containers.metrics import alerts

    first_wrote, release = threading.Event(), threading.Event()
    write = alerts._write
    reports: dict[str, Any] = {}

    def slow_write(plan: Any, at: Any) -> None:
        write(plan, at)
        if threading.current_thread().name == "first":
            first_wrote.set()
            assert release.wait(30)

    def run(name: str) -> None:
        try:
            samples = poll_samples(site, now)
            reports[name] = alerts.evaluate_alerts(samples, site=site, now=now)
        finally:
            connection.close()

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(alerts, "_write", slow_write)
        first = threading.Thread(target=run, args=("first",), name="first")
        first.start()
        assert first_wrote.wait(30)
        second = threading.Thread(target=run, args=("second",), name="second")
        second.start()
        second.join(1.0)
        waited = second.is_alive()  # blocked on the first's locks (or its unique keys)
        release.set()
        first.join(30)
        second.join(30)
    assert waited, "the second poll did not wait for the first one's transaction"
    return [reports["first"], reports["second"]]


def poll_samples(site: Any, now: Any) -> list[Any]:
    """What metrics_poll_site hands the alert check: this poll's samples, from the simulator."""
    from containers.metrics.poll import _previous, build_samples, site_resources
    from containers.models import LIVE

    containers = dict(Container.objects.filter(LIVE, site=site).values_list("vmid", "pk"))
    return build_samples(site_resources(site), containers, _previous(site), now)
