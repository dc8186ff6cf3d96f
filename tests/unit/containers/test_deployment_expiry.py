"""Preview expiry: a warning once before, removal at expiry (as a delete job), a push or
an extension starts the clock again, and --dry-run changes nothing. The warning goes
through notify() (kind `expiry`): mail (locmem) and webhooks (a loopback receiver) as the
owner chose, and a failing mail server never stops the sweep."""

from __future__ import annotations

import json
import socket
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.core.management import call_command
from django.utils import timezone

from containers.deployment_expiry import deployments_sweep
from containers.deployments import deployment_extend, deployment_put
from containers.models import Container, ContainerStatus, Deployment, Job, JobStatus
from tests.factories import UserFactory, make_site
from tests.unit.containers.test_deployments import APP, SHA, archive

pytestmark = pytest.mark.django_db(transaction=True)


def test_warned_once_then_removed_at_expiry(no_jobs: None, deliver_now: Any, capsys) -> None:
    site = make_site(None)
    owner = UserFactory(username="ivy", email="ivy@example.org")
    made = deployment_put(
        actor=owner,
        repository="acme/shop",
        ref="pr-4",
        commit=SHA,
        template=site.templates.get(),
        source=archive(),
        app=APP,
        ttl_days=2,
    )
    Job.objects.update(status=JobStatus.SUCCEEDED)
    Container.objects.update(status=ContainerStatus.RUNNING)
    now = timezone.now()

    assert deployments_sweep(now=now).lines() == []  # two days left: nothing yet
    soon = now + timedelta(days=1, hours=1)
    call_command("deployments", "sweep", "--dry-run")
    assert deployments_sweep(now=soon, dry_run=True).warned == ["acme-shop-pr-4"]
    assert not mail.outbox
    assert deployments_sweep(now=soon).warned == ["acme-shop-pr-4"]
    assert deployments_sweep(now=soon).warned == []  # once
    assert len(mail.outbox) == 1 and "acme-shop-pr-4" in mail.outbox[0].subject
    assert "portalctl deployments extend acme-shop-pr-4" in mail.outbox[0].body

    # Extending starts again, and so does the warning.
    deployment_extend(deployment=made.deployment, actor=owner, days=1)
    assert Deployment.objects.get().warned_at is None

    late = now + timedelta(days=3)
    assert deployments_sweep(now=late, dry_run=True).removed == ["acme-shop-pr-4"]
    assert Deployment.objects.get().state == "queued"
    report = deployments_sweep(now=late)
    assert report.removed == ["acme-shop-pr-4"]
    row = Deployment.objects.get()
    assert row.state == "removing" and "expired after 2 idle days" in row.state_message
    assert Job.objects.filter(kind="delete").count() == 1


def preview(owner: Any, site: Any, ref: str = "pr-4") -> Deployment:
    """A deployment of `owner`'s with a 2-day TTL whose create job has run."""
    made = deployment_put(
        actor=owner,
        repository="acme/shop",
        ref=ref,
        commit=SHA,
        template=site.templates.get(),
        source=archive(),
        app=APP,
        ttl_days=2,
    )
    Job.objects.update(status=JobStatus.SUCCEEDED)
    Container.objects.update(status=ContainerStatus.RUNNING)
    return made.deployment


def test_the_warning_is_an_expiry_notification_with_its_webhooks(
    no_jobs: None, deliver_now: Any, webhook_receiver: Any
) -> None:
    from auth.notifications import webhook_set

    site = make_site(None)
    owner = UserFactory(username="ivy", email="ivy@example.org")
    operator = UserFactory(username="op", is_staff=True)
    webhook_set(actor=owner, user=owner, url=webhook_receiver.url, secret="s3cret")
    webhook_set(actor=operator, site=site, url=webhook_receiver.url + "/site")
    deployment = preview(owner, site)
    soon = timezone.now() + timedelta(days=1, hours=1)

    assert deployments_sweep(now=soon).warned == [deployment.name]

    [sent] = mail.outbox
    assert sent.to == ["ivy@example.org"] and sent.extra_headers["X-Portal-Event"] == "expiry"
    assert f"{deployment.name} is removed on" in sent.subject
    assert f"portalctl deployments extend {deployment.name} --days N" in sent.body
    bodies = [json.loads(body) for _, body in webhook_receiver.requests]
    assert len(bodies) == 2  # the owner's webhook and the site's
    for body in bodies:
        assert body["kind"] == "expiry" and body["data"]["event"] == "warning"
        assert body["data"]["deployment"] == deployment.name
        assert body["data"]["repository"] == "acme/shop" and body["data"]["ref"] == "pr-4"
        assert body["data"]["site"] == site.slug
    assert Deployment.objects.get().warned_at == soon


def test_an_owner_who_muted_expiry_is_not_warned(no_jobs: None, deliver_now: Any) -> None:
    from auth.notifications import notification_kinds_set

    site = make_site(None)
    owner = UserFactory(username="ivy", email="ivy@example.org")
    notification_kinds_set(user=owner, kinds={"expiry": False}, actor=owner)
    preview(owner, site)
    soon = timezone.now() + timedelta(days=1, hours=1)
    assert deployments_sweep(now=soon).warned == ["acme-shop-pr-4"]  # done, and marked
    assert mail.outbox == [] and deliver_now == []
    assert Deployment.objects.get().warned_at == soon


def test_a_failing_mail_server_never_stops_the_sweep(
    no_jobs: None, deliver_now: Any, settings: Any, caplog: Any
) -> None:
    with socket.socket() as s:  # a loopback port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", port, 2
    settings.NOTIFY_MAX_RETRIES = 1
    site = make_site(None)
    owner = UserFactory(username="ivy", email="ivy@example.org")
    first = preview(owner, site, ref="pr-4")
    second = preview(owner, site, ref="pr-5")
    soon = timezone.now() + timedelta(days=1, hours=1)

    report = deployments_sweep(now=soon)

    assert sorted(report.warned) == sorted([first.name, second.name])
    assert Deployment.objects.filter(warned_at=soon).count() == 2
    assert deliver_now == [("email", owner.pk), ("email", owner.pk)]
    assert mail.outbox == []
    assert "gave up on the expiry notification" in caplog.text
    # The expired one is still removed by a later sweep, the mail server down or not.
    late = timezone.now() + timedelta(days=3)
    assert sorted(deployments_sweep(now=late).removed) == sorted([first.name, second.name])
