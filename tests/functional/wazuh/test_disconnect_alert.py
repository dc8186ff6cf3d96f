"""The disconnection alert, by the poll's clock against the double: an agent silent longer
than the site's threshold raises a ContainerAlert, mailed to the owner and the operators
and shown on the container's page; it clears, and that is said, when the agent is back.
A stopped container's silent agent is no alert."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail
from django.test import Client

from containers.metrics.models import AlertKind, ContainerAlert
from containers.models import Container, ContainerStatus, WazuhAgent
from containers.wazuh.poll import wazuh_poll_site
from tests.factories import UserFactory, make_containers, make_site
from tests.fixtures.wazuh_double import WazuhDouble

from .arrange import watch

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_a_long_silent_agent_raises_an_alert_that_clears_when_it_is_back(
    wazuh: WazuhDouble, deliver_now: object
) -> None:
    site = make_site(None)
    operator = UserFactory(username="op", email="op@example.org", is_staff=True)
    manager = wazuh.configure(site, disconnect_alert_minutes=30)
    silent, fine, stopped = make_containers(site, 3)
    Container.objects.filter(pk=stopped.pk).update(status=ContainerStatus.STOPPED)
    watch([fine], wazuh)
    rows = watch([silent, stopped], wazuh, status="disconnected", last_keepalive=T0)
    agent = wazuh.agent_named(rows[0].name)
    assert agent is not None

    def poll(minutes: float) -> None:
        assert not wazuh_poll_site(manager=manager, now=T0 + timedelta(minutes=minutes)).error

    poll(10)  # silent for 10 minutes: pending, nothing said
    alert = ContainerAlert.objects.get(kind=AlertKind.WAZUH_AGENT)
    assert (alert.container_id, alert.since, alert.raised_at) == (silent.pk, T0, None)
    assert alert.value == 10 and mail.outbox == []
    poll(29)
    assert ContainerAlert.objects.get().raised_at is None and mail.outbox == []

    poll(31)  # past the threshold: raised and told
    alert.refresh_from_db()
    assert alert.raised_at == T0 + timedelta(minutes=31) and alert.since == T0
    assert f"{rows[0].name} has not reported since 2026-12-01 12:00 UTC" in alert.message
    assert sorted(m.to[0] for m in mail.outbox) == sorted([silent.owner.email, operator.email])
    subject = f"[Cluster Portal] [alert] {silent.hostname}: security agent disconnected"
    assert [m.subject for m in mail.outbox] == [subject, subject]
    assert "wazuh-agent" in mail.outbox[0].body
    # The stopped container's agent is as silent, and expected to be.
    assert not ContainerAlert.objects.filter(container=stopped).exists()

    # Its page says so (the owner's view).
    owner = Client()
    owner.force_login(silent.owner)
    page = owner.get(f"/containers/{silent.pk}/").content.decode()
    assert 'data-alert-kind="wazuh_agent"' in page and "Security agent disconnected" in page

    poll(40)  # still silent: nothing new said
    assert len(mail.outbox) == 2

    agent.status, agent.last_keepalive = "active", T0 + timedelta(minutes=44)
    poll(45)
    alert.refresh_from_db()
    assert alert.cleared_at == T0 + timedelta(minutes=45)
    assert len(mail.outbox) == 4
    assert all("[alert cleared]" in m.subject for m in mail.outbox[2:])
    assert "active again" in mail.outbox[2].body
    assert (
        'data-alert-kind="wazuh_agent"'
        not in owner.get(f"/containers/{silent.pk}/").content.decode()
    )


def test_an_agent_silent_since_long_ago_is_raised_at_once_and_a_stop_clears_it(
    wazuh: WazuhDouble, deliver_now: object
) -> None:
    site = make_site(None)
    manager = wazuh.configure(site, disconnect_alert_minutes=5)
    [ct] = make_containers(site, 1)
    watch([ct], wazuh, status="disconnected", last_keepalive=T0 - timedelta(days=1))
    wazuh_poll_site(manager=manager, now=T0)
    alert = ContainerAlert.objects.get()
    assert alert.raised_at == T0 and alert.since == T0 - timedelta(days=1)
    assert len(mail.outbox) == 1

    Container.objects.filter(pk=ct.pk).update(status=ContainerStatus.STOPPED)
    wazuh_poll_site(manager=manager, now=T0 + timedelta(minutes=1))
    alert.refresh_from_db()
    assert alert.cleared_at == T0 + timedelta(minutes=1)
    assert "no longer running" in mail.outbox[-1].body


def test_the_alert_of_a_container_no_longer_watched_closes_quietly(
    wazuh: WazuhDouble, deliver_now: object
) -> None:
    site = make_site(None)
    manager = wazuh.configure(site, disconnect_alert_minutes=5)
    [ct] = make_containers(site, 1)
    [row] = watch([ct], wazuh, status="disconnected", last_keepalive=T0 - timedelta(hours=1))
    wazuh_poll_site(manager=manager, now=T0)
    assert ContainerAlert.objects.get().is_open and len(mail.outbox) == 1
    WazuhAgent.objects.filter(pk=row.pk).update(status="removal_pending")  # being deleted
    wazuh_poll_site(manager=manager, now=T0 + timedelta(minutes=1))
    assert ContainerAlert.objects.get().cleared_at == T0 + timedelta(minutes=1)
    assert len(mail.outbox) == 1
