"""Container expiry with a controlled clock: warned once before, stopped (not deleted) at
expiry, deleted after the grace unless extended; extension within and beyond policy;
defaults from template and site; --dry-run changes nothing; the retention sweeps."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from auth.models import ApiToken, AuditEntry, Collaborator
from auth.tokens import token_create
from containers import services
from containers.container_expiry import container_extend, containers_sweep
from containers.models import Container, ContainerStatus, Job, JobLogEntry, JobStatus
from containers.retention import retention_sweep
from portal.errors import InvalidState, PermissionDenied, ValidationFailed
from tests.api_contract import check
from tests.factories import UserFactory, make_site

pytestmark = pytest.mark.django_db(transaction=True)
DAY = timedelta(days=1)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, settings: Any, deliver_now: Any) -> Any:
    monkeypatch.setattr("containers.tasks.enqueue_job", lambda job_id: None)
    monkeypatch.setattr("containers.services.proxmox_used_vmids", lambda site: frozenset())
    settings.CONTAINER_EXPIRY_WARN_DAYS = 7
    settings.CONTAINER_EXPIRY_GRACE_DAYS = 14
    settings.CONTAINER_EXTEND_MAX_DAYS = 90
    return make_site(None)


def running(site: Any, hostname: str, owner: Any) -> Container:
    job = services.container_create(owner=owner, hostname=hostname, template=site.templates.get())
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED)
    Container.objects.filter(pk=job.container_id).update(status=ContainerStatus.RUNNING)
    return Container.objects.get(pk=job.container_id)


def settle(kind: str, to: str) -> None:
    """The job the sweep queued, as if a worker had run it."""
    job = Job.objects.get(kind=kind, status=JobStatus.QUEUED)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED)
    Container.objects.filter(pk=job.container_id).update(status=to)


def test_warn_stop_grace_delete(env) -> None:
    owner = UserFactory(username="ann", email="ann@example.org")
    now = timezone.now()
    c = running(env, "web1", owner)
    Container.objects.filter(pk=c.pk).update(expires_at=now + 10 * DAY)

    assert containers_sweep(now=now).lines() == []  # ten days left: nothing yet
    assert containers_sweep(now=now + 4 * DAY, dry_run=True).warned == ["web1"]
    assert not mail.outbox and Container.objects.get().expiry_warned_at is None
    assert containers_sweep(now=now + 4 * DAY).warned == ["web1"]
    assert containers_sweep(now=now + 5 * DAY).warned == []  # once per expiry
    [warning] = mail.outbox
    assert warning.to == ["ann@example.org"] and "web1 expires on" in warning.subject
    assert "portalctl containers extend web1 --days N" in warning.body

    # At expiry: stopped by a stop job, not deleted.
    at = now + 10 * DAY + timedelta(minutes=1)
    assert containers_sweep(now=at, dry_run=True).stopped == ["web1"]
    assert not Job.objects.filter(kind="stop").exists()
    report = containers_sweep(now=at)
    assert report.stopped == ["web1"] and report.deleted == []
    assert Job.objects.filter(kind="stop", actor=None).count() == 1
    settle("stop", ContainerStatus.STOPPED)
    c = Container.objects.get()
    assert c.status == ContainerStatus.STOPPED and c.expiry_stopped_at == at
    assert c.deletes_at == at + 14 * DAY
    assert "expired and was stopped" in mail.outbox[-1].subject
    assert containers_sweep(now=at + DAY).lines() == []  # stopped once

    # Within the grace: still there.
    assert containers_sweep(now=at + 13 * DAY).deleted == []
    assert Container.objects.get().status == ContainerStatus.STOPPED
    # After it: deleted (a delete job), and told.
    assert containers_sweep(now=at + 14 * DAY, dry_run=True).deleted == ["web1"]
    assert Container.objects.get().status == ContainerStatus.STOPPED
    assert containers_sweep(now=at + 14 * DAY).deleted == ["web1"]
    assert Container.objects.get().status == ContainerStatus.DELETING
    assert Job.objects.filter(kind="delete", actor=None).count() == 1
    assert "is being deleted" in mail.outbox[-1].subject
    assert AuditEntry.objects.filter(action="container.delete", actor=None).exists()
    assert containers_sweep(now=at + 15 * DAY).lines() == []


def test_extend_within_and_beyond_policy(env) -> None:
    owner = UserFactory(username="bo", email="bo@example.org")
    collab = UserFactory(username="cid")
    staff = UserFactory(username="op", is_staff=True)
    now = timezone.now()
    c = running(env, "web2", owner)
    Container.objects.filter(pk=c.pk).update(expires_at=now + 3 * DAY, expiry_warned_at=now)
    c.refresh_from_db()

    container_extend(container=c, actor=owner, days=30, now=now)
    c.refresh_from_db()
    assert c.expires_at == now + 33 * DAY and c.expiry_warned_at is None  # warned again
    assert AuditEntry.objects.filter(action="container.extend", actor=owner).exists()

    with pytest.raises(ValidationFailed) as beyond:  # 33 + 60 days > 90 from now
        container_extend(container=c, actor=owner, days=60, now=now)
    assert beyond.value.code == "extend_beyond_policy"
    assert beyond.value.extra["field"] == "days"
    c.refresh_from_db()
    assert c.expires_at == now + 33 * DAY  # unchanged
    container_extend(container=c, actor=owner, days=57, now=now)  # exactly 90: allowed
    container_extend(container=c, actor=staff, days=365, now=now)  # staff may go further
    c.refresh_from_db()
    assert c.expires_at == now + 455 * DAY
    Collaborator.objects.create(container=c, user=collab, added_by=owner)
    with pytest.raises(PermissionDenied):
        container_extend(container=c, actor=collab, days=1, now=now)
    with pytest.raises(ValidationFailed):
        container_extend(container=c, actor=owner, days=0, now=now)


def test_extending_a_stopped_container_saves_it(env) -> None:
    owner = UserFactory(username="di", email="di@example.org")
    now = timezone.now()
    c = running(env, "web3", owner)
    Container.objects.filter(pk=c.pk).update(expires_at=now - DAY)
    assert containers_sweep(now=now).stopped == ["web3"]
    settle("stop", ContainerStatus.STOPPED)
    c.refresh_from_db()
    # Expired: extended from now, not from the past expiry.
    container_extend(container=c, actor=owner, days=5, now=now + DAY)
    c.refresh_from_db()
    assert c.expires_at == now + 6 * DAY and c.expiry_stopped_at is None
    assert containers_sweep(now=now + 20 * DAY).deleted == []  # not deleted: stopped again
    assert Container.objects.get().status == ContainerStatus.STOPPED


def test_no_expiry_and_defaults(env, settings) -> None:
    owner = UserFactory(username="ed")
    c = running(env, "plain", owner)
    assert c.expires_at is None and c.deletes_at is None
    with pytest.raises(InvalidState) as none:
        container_extend(container=c, actor=owner, days=1)
    assert none.value.code == "no_expiry"

    env.container_ttl_days = 30
    env.save()
    c = running(env, "site-ttl", owner)
    assert c.expires_at is not None
    assert abs(c.expires_at - (timezone.now() + 30 * DAY)) < timedelta(minutes=1)
    template = env.templates.get()
    template.container_ttl_days = 2
    template.save()
    c = running(env, "tpl-ttl", owner)
    assert c.expires_at is not None
    assert abs(c.expires_at - (timezone.now() + 2 * DAY)) < timedelta(minutes=1)


def test_api_and_command(env) -> None:
    owner = UserFactory(username="fa", email="fa@example.org")
    now = timezone.now()
    c = running(env, "web4", owner)
    Container.objects.filter(pk=c.pk).update(expires_at=now + DAY)
    client = Client()
    client.force_login(owner)
    shown = check(client.get(f"/api/v1/containers/{c.pk}/")).json()
    assert shown["expires_at"] is not None and shown["deletes_at"] is not None
    extended = check(
        client.post(
            f"/api/v1/containers/{c.pk}/extend/", {"days": 10}, content_type="application/json"
        )
    )
    assert extended.status_code == 200, extended.content
    assert extended.json()["expires_at"] != shown["expires_at"]
    refused = check(
        client.post(
            f"/api/v1/containers/{c.pk}/extend/", {"days": 200}, content_type="application/json"
        )
    )
    assert refused.status_code == 400 and refused.json()["code"] == "extend_beyond_policy"

    Container.objects.filter(pk=c.pk).update(expires_at=now - DAY)
    out = _call("containers", "sweep", "--dry-run")
    assert "would have stopped web4" in out and "would have pruned" in out
    assert Container.objects.get().expiry_stopped_at is None
    assert "stopped web4" in _call("containers", "sweep")


def _call(*args: str) -> str:
    from io import StringIO

    buf = StringIO()
    call_command(*args, stdout=buf)
    return buf.getvalue()


def test_retention(env, settings) -> None:
    settings.JOB_LOG_RETENTION_DAYS = 30
    settings.AUDIT_RETENTION_DAYS = 365
    settings.API_TOKEN_RETENTION_DAYS = 10
    owner = UserFactory(username="gi")
    now = timezone.now()
    c = running(env, "web5", owner)
    job = Job.objects.get(container=c)
    JobLogEntry.objects.create(job=job, message="old", created_at=now - 40 * DAY)
    JobLogEntry.objects.create(job=job, message="new", created_at=now - DAY)
    AuditEntry.objects.create(action="x.old", created_at=now - 400 * DAY)
    token, _ = token_create(user=owner, name="t", scope="read", expires_in_days=7)
    ApiToken.objects.filter(pk=token.pk).update(expires_at=now - 11 * DAY)
    token_create(user=owner, name="live", scope="read", expires_in_days=7)

    dry = retention_sweep(now=now, dry_run=True)
    assert dry == {"job log lines": 1, "audit entries": 1, "API tokens": 1}
    assert JobLogEntry.objects.filter(message="old").exists()
    assert retention_sweep(now=now) == dry
    assert list(JobLogEntry.objects.filter(job=job).values_list("message", flat=True)) == ["new"]
    assert not AuditEntry.objects.filter(action="x.old").exists()
    assert list(ApiToken.objects.values_list("name", flat=True)) == ["live"]


def test_container_page_shows_expiry_and_extends(env) -> None:
    owner = UserFactory(username="hu", email="hu@example.org")
    collab = UserFactory(username="iv")
    now = timezone.now()
    c = running(env, "web6", owner)
    Container.objects.filter(pk=c.pk).update(expires_at=now + 2 * DAY)
    Collaborator.objects.create(container=c, user=collab, added_by=owner)
    client = Client()
    client.force_login(owner)
    page = client.get(f"/containers/{c.pk}/").content.decode()
    assert "<dt>Expires</dt>" in page and "unless extended" in page
    assert 'id="extend-h"' in page
    done = client.post(f"/containers/{c.pk}/extend/", {"days": 5})
    assert done.status_code == 302
    assert Container.objects.get().expires_at == (now + 2 * DAY) + 5 * DAY
    client.post(f"/containers/{c.pk}/extend/", {"days": 500})  # beyond: refused, shown
    page = client.get(f"/containers/{c.pk}/").content.decode()
    assert "ask staff for longer" in page
    assert Container.objects.get().expires_at == now + 7 * DAY
    # A collaborator sees the date but has no form.
    other = Client()
    other.force_login(collab)
    page = other.get(f"/containers/{c.pk}/").content.decode()
    assert "unless extended" in page and 'id="extend-h"' not in page
