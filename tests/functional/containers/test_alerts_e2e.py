"""Alerts against the simulator over HTTPS: a container under memory pressure is polled
with the test's clock; the alert is raised after ALERT_FOR_MINUTES, mailed (locmem) and
posted to a loopback webhook, and cleared when the pressure ends.

The simulator is the session's: the test seeds its own guests (far above the portal's
VMIDs) and removes them after.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.utils import timezone

from auth.notifications import webhook_set
from containers.metrics.models import AlertKind, ContainerAlert
from containers.metrics.poll import metrics_poll_site
from containers.models import Container
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
