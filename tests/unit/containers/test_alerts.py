"""Noisy-neighbour alerts after each poll (containers/metrics/alerts.py), with the Proxmox
client faked at its boundary: /cluster/resources and status/current answer what the test
says, and the poll's clock is the test's (`now=`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from containers.metrics.models import AlertKind, ContainerAlert
from containers.metrics.poll import metrics_poll_site
from containers.models import Container, ContainerStatus
from containers.proxmox import ProxmoxClient, ProxmoxUnavailable
from tests.factories import UserFactory, make_containers, make_site

pytestmark = pytest.mark.django_db(transaction=True)

T0 = timezone.now().replace(microsecond=0)
MIB = 1 << 20


class FakeCluster:
    """Resources and status/current for a few CTs; counts the status calls."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, vmids: list[int]) -> None:
        self.figures = {v: {"cpu": 0.1, "mem": 100 * MIB, "pressure": 0.0} for v in vmids}
        self.status_calls: list[int] = []
        self.status_down = False
        outer = self

        def cluster_resources(client: ProxmoxClient, type: str = "vm") -> list[dict[str, Any]]:
            return [
                {
                    "type": "lxc",
                    "vmid": v,
                    "status": "running",
                    "cpu": f["cpu"],
                    "maxcpu": 2,
                    "mem": f["mem"],
                    "maxmem": 512 * MIB,
                    "uptime": 100,
                }
                for v, f in outer.figures.items()
            ]

        def container_status(client: ProxmoxClient, node: str, vmid: int) -> dict[str, Any]:
            outer.status_calls.append(vmid)
            if outer.status_down:
                raise ProxmoxUnavailable("down")
            return {"vmid": vmid, "pressurememorysome": outer.figures[vmid]["pressure"]}

        monkeypatch.setattr(ProxmoxClient, "cluster_resources", cluster_resources)
        monkeypatch.setattr(ProxmoxClient, "container_status", container_status)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch, settings: Any, deliver_now: Any) -> Any:
    settings.ALERT_MEMORY_FRACTION = 0.9
    settings.ALERT_MEMORY_PRESSURE = 10
    settings.ALERT_CPU_FRACTION = 0.95
    settings.ALERT_FOR_MINUTES = 5
    site = make_site(None)
    UserFactory(username="op", email="op@example.org", is_staff=True)
    containers = make_containers(site, 3)
    fake = FakeCluster(monkeypatch, [c.vmid for c in containers])
    return site, containers, fake


def poll(site: Any, minutes: float) -> None:
    metrics_poll_site(site=site, now=T0 + timedelta(minutes=minutes))


def test_one_sample_above_the_threshold_does_not_raise(world: Any) -> None:
    site, (a, b, _c), fake = world
    fake.figures[a.vmid].update(mem=500 * MIB, pressure=40)
    fake.figures[b.vmid].update(cpu=1.0)
    poll(site, 0)
    pending = ContainerAlert.objects.filter(raised_at__isnull=True, cleared_at__isnull=True)
    assert sorted(pending.values_list("container_id", "kind")) == sorted(
        [(a.pk, AlertKind.MEMORY), (b.pk, AlertKind.CPU)]
    )
    assert not ContainerAlert.objects.filter(raised_at__isnull=False).exists()
    assert mail.outbox == []
    # Pressure was read for the one CT near its limit only, never for the fleet.
    assert fake.status_calls == [a.vmid]

    # It ends before N minutes: the pending rows go, nothing was ever said.
    fake.figures[a.vmid].update(mem=100 * MIB, pressure=0)
    fake.figures[b.vmid].update(cpu=0.2)
    poll(site, 2)
    assert not ContainerAlert.objects.exists()
    assert mail.outbox == []


def test_memory_near_its_limit_without_pressure_is_no_alert(world: Any) -> None:
    site, (a, _b, _c), fake = world
    fake.figures[a.vmid].update(mem=500 * MIB, pressure=2)  # full, but not thrashing
    for minute in range(0, 8):
        poll(site, minute)
    assert not ContainerAlert.objects.exists()


def test_raised_after_n_minutes_notified_and_cleared(world: Any, webhook_receiver: Any) -> None:
    from auth.notifications import webhook_set

    site, (a, _b, _c), fake = world
    webhook_set(site=site, url=webhook_receiver.url, actor=UserFactory(username="op"))
    fake.figures[a.vmid].update(cpu=1.0)
    poll(site, 0)
    poll(site, 4.5)
    assert not ContainerAlert.objects.filter(raised_at__isnull=False).exists()
    poll(site, 5)
    alert = ContainerAlert.objects.get()
    assert (alert.kind, alert.raised_at, alert.cleared_at) == (
        AlertKind.CPU,
        T0 + timedelta(minutes=5),
        None,
    )
    assert sorted(m.to[0] for m in mail.outbox) == sorted([a.owner.email, "op@example.org"])
    assert "CPU" in mail.outbox[0].subject and a.hostname in mail.outbox[0].subject
    assert len(webhook_receiver.requests) == 1
    # Still high: no second alert, no second mail.
    poll(site, 6)
    assert ContainerAlert.objects.count() == 1 and len(mail.outbox) == 2

    fake.figures[a.vmid].update(cpu=0.3)
    poll(site, 7)
    alert.refresh_from_db()
    assert alert.cleared_at == T0 + timedelta(minutes=7)
    assert len(mail.outbox) == 4 and "cleared" in mail.outbox[-1].subject
    assert len(webhook_receiver.requests) == 2

    # It comes back: a new alert row (the cleared one stays as history).
    fake.figures[a.vmid].update(cpu=1.0)
    poll(site, 8)
    assert ContainerAlert.objects.filter(cleared_at__isnull=True).count() == 1
    assert ContainerAlert.objects.count() == 2


def test_pressure_that_cannot_be_read_leaves_the_alert_as_it_is(world: Any) -> None:
    site, (a, _b, _c), fake = world
    fake.figures[a.vmid].update(mem=500 * MIB, pressure=40)
    poll(site, 0)
    poll(site, 5)
    assert ContainerAlert.objects.get().is_open
    fake.status_down = True
    poll(site, 6)
    assert ContainerAlert.objects.get().is_open  # unknown is not "ended"
    fake.status_down = False
    fake.figures[a.vmid].update(pressure=1)
    poll(site, 7)
    assert ContainerAlert.objects.get().cleared_at is not None


def test_open_alerts_are_counted_for_prometheus(world: Any, client: Any) -> None:
    from tests.unit.containers.test_monitoring import scrape, value

    site, (a, b, c), fake = world
    for container in (a, b):
        fake.figures[container.vmid].update(cpu=1.0)
    fake.figures[c.vmid].update(mem=500 * MIB, pressure=50)
    poll(site, 0)
    metrics = scrape(client)
    assert value(metrics["portal_alerts_open"], kind="cpu") == 0  # pending is not open
    poll(site, 5)
    metrics = scrape(client)
    assert value(metrics["portal_alerts_open"], kind="cpu") == 2
    assert value(metrics["portal_alerts_open"], kind="memory") == 1


def test_the_container_page_and_the_admin_show_open_alerts(world: Any, client: Any) -> None:
    site, (a, _b, _c), fake = world
    client.force_login(a.owner)
    assert "data-container-alerts" not in client.get(f"/containers/{a.pk}/").content.decode()
    fake.figures[a.vmid].update(mem=500 * MIB, pressure=40)
    poll(site, 0)
    assert "data-container-alerts" not in client.get(f"/containers/{a.pk}/").content.decode()
    poll(site, 5)
    page = client.get(f"/containers/{a.pk}/").content.decode()
    assert 'data-alert-kind="memory"' in page and "memory pressure 40%" in page

    staff = UserFactory(username="admin", is_staff=True, is_superuser=True)
    client.force_login(staff)
    listing = client.get("/admin/containers/containeralert/?state=open")
    assert listing.status_code == 200 and a.hostname in listing.content.decode()
    assert client.get("/admin/containers/containeralert/add/").status_code == 403
    change = client.get(f"/admin/containers/container/{a.pk}/change/").content.decode()
    assert "open alerts" in change.lower() and "memory pressure 40%" in change


# -- the cost of a poll's alert writes ------------------------------------------------


def alert_statements(site: Any, minutes: float) -> list[str]:
    """The SQL a poll sends about alerts and their notifications (the samples' own reads
    and writes are test_metrics.py's)."""
    with CaptureQueriesContext(connection) as seen:
        poll(site, minutes)
    skip = ("containers_containersample", "networking_node")
    return [
        q["sql"].lstrip()[:6].upper()
        for q in seen.captured_queries
        if not any(t in q["sql"] for t in skip) and not q["sql"].startswith(("BEGIN", "COMMIT"))
    ]


def test_a_poll_writes_its_alerts_in_a_fixed_number_of_statements(
    monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    """3 containers or 40 all turning noisy, staying noisy and calming down: the same
    statements each time (one bulk insert, one bulk update, ...), whatever the count.
    Deliveries are only queued here (each is a task of its own, not the poll's work)."""
    from auth import notifications

    queued: list[tuple[str, int, dict[str, Any]]] = []
    monkeypatch.setattr(notifications, "enqueue_delivery", lambda *args: queued.append(args))
    settings.ALERT_CPU_FRACTION = 0.95
    settings.ALERT_FOR_MINUTES = 5
    UserFactory(username="op", email="op@example.org", is_staff=True)
    small, big = make_site(None), make_site(None, slug="big")
    few, many = make_containers(small, 3), make_containers(big, 40, first_vmid=5000)
    fake = FakeCluster(monkeypatch, [c.vmid for c in few + many])
    for c in few + many:
        fake.figures[c.vmid].update(cpu=1.0)

    phases = {}
    for site in (small, big):
        phases[site.slug] = [
            alert_statements(site, 0),  # seen: pending rows
            alert_statements(site, 5),  # raised and told
            alert_statements(site, 6),  # still there: new figures
        ]
    for c in few + many:
        fake.figures[c.vmid].update(cpu=0.2)
    for site in (small, big):
        phases[site.slug].append(alert_statements(site, 7))  # cleared and told

    assert phases[small.slug] == phases[big.slug]
    pending, raised, held, cleared = phases[big.slug]
    # Each phase: the containers' ids by vmid, the site's active alerts (locked), then
    # the one write of the phase; telling reads the containers, staff, preferences and
    # webhooks once for all the alerts.
    assert pending == ["SELECT", "SELECT", "INSERT"]
    assert raised == ["SELECT", "SELECT", "UPDATE", *["SELECT"] * 5]
    assert held == ["SELECT", "SELECT", "UPDATE"]
    assert cleared == ["SELECT", "SELECT", "UPDATE", *["SELECT"] * 5]
    assert ContainerAlert.objects.filter(cleared_at__isnull=False).count() == 43
    # Each raised and each cleared alert is mailed to its owner and the operator.
    states = [(p["data"]["state"], p["data"]["container"]) for _, _, p in queued]
    assert len(queued) == 2 * 2 * 43 and {channel for channel, _, _ in queued} == {"email"}
    assert sorted(set(states)) == sorted(
        (state, c.pk) for state in ("cleared", "raised") for c in few + many
    )


def test_a_deleted_containers_alerts_close_without_a_word(world: Any) -> None:
    site, (a, b, _c), fake = world
    fake.figures[a.vmid].update(cpu=1.0)
    fake.figures[b.vmid].update(cpu=1.0)
    poll(site, 0)
    poll(site, 5)
    assert ContainerAlert.objects.filter(raised_at__isnull=False).count() == 2
    told = len(mail.outbox)
    Container.objects.filter(pk=a.pk).update(status=ContainerStatus.DELETED)
    poll(site, 6)
    gone = ContainerAlert.objects.get(container=a)
    assert gone.cleared_at == T0 + timedelta(minutes=6)
    assert ContainerAlert.objects.get(container=b).is_open
    assert len(mail.outbox) == told  # nobody to tell about a container that is gone
