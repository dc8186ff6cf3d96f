"""Preview expiry: a warning once before, removal at expiry (as a delete job), a push or
an extension starts the clock again, and --dry-run changes nothing."""

from __future__ import annotations

from datetime import timedelta

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


def test_warned_once_then_removed_at_expiry(no_jobs: None, capsys) -> None:
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
