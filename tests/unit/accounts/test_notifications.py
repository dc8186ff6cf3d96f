"""Notifications: a failed job is mailed (locmem backend) and POSTed, signed, to a webhook
(a loopback receiver started here); a failing mail server fails no job; preferences are
respected; webhook URLs are checked and their secrets never shown or audited."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
from typing import Any

import pytest
from django.core import mail
from django.db import connection
from django.test import Client

from auth import notifications
from auth.models import AuditEntry, NotificationKind, Webhook
from auth.notification_delivery import SIGNATURE_HEADER
from containers import services
from containers.jobs import runner
from containers.jobs.power import StopJob
from containers.models import Container, ContainerStatus, Job, JobStatus
from portal.errors import PortalError, ValidationFailed
from tests.api_contract import check
from tests.factories import UserFactory, make_site

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def no_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("containers.tasks.enqueue_job", lambda job_id: None)
    monkeypatch.setattr("containers.services.proxmox_used_vmids", lambda site: frozenset())


@pytest.fixture
def receiver(webhook_receiver: Any) -> Any:
    return webhook_receiver


def failed_stop(monkeypatch: pytest.MonkeyPatch, owner: Any, site: Any = None) -> Job:
    """A running container whose stop job fails (Proxmox refuses), run by the real runner."""
    site = site or make_site(None)
    job = services.container_create(owner=owner, hostname="web1", template=site.templates.get())
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED)
    Container.objects.filter(pk=job.container_id).update(status=ContainerStatus.RUNNING)
    container = Container.objects.get(pk=job.container_id)

    def refuse(self: Any, ctx: Any) -> dict[str, Any]:
        raise PortalError("Proxmox refused the shutdown", code="proxmox_error")

    monkeypatch.setattr(StopJob, "run", refuse)
    monkeypatch.setattr(StopJob, "undo", lambda self, ctx: "")
    stop = services.container_stop(container=container, actor=owner)
    runner.run(str(stop.pk), worker="test")
    stop.refresh_from_db()
    assert stop.status == JobStatus.FAILED
    return stop


def test_failed_job_is_mailed_to_its_owner(no_jobs, deliver_now, monkeypatch) -> None:
    owner = UserFactory(username="ann", email="ann@example.org")
    job = failed_stop(monkeypatch, owner)
    assert len(mail.outbox) == 1
    msg = mail.outbox[0]
    assert msg.to == ["ann@example.org"]
    assert "Stopping web1 failed" in msg.subject
    assert "Proxmox refused the shutdown" in msg.body and str(job.pk) in msg.body
    assert msg.extra_headers["X-Portal-Event"] == "job_failed"


def test_webhook_gets_a_signed_json_body(no_jobs, deliver_now, receiver, monkeypatch) -> None:
    owner = UserFactory(username="bea", email="")  # no mail address: the webhook only
    notifications.webhook_set(actor=owner, user=owner, url=receiver.url, secret="s3cret")
    failed_stop(monkeypatch, owner)
    assert deliver_now == [("webhook", Webhook.objects.get().pk)]
    [(headers, body)] = receiver.requests
    want = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER] == want
    assert headers["Content-Type"] == "application/json"
    payload = json.loads(body)
    assert payload["kind"] == "job_failed" and headers["X-Portal-Event"] == "job_failed"
    assert payload["data"]["container"] == "web1" and payload["data"]["job_kind"] == "stop"
    assert headers["X-Portal-Delivery"] == payload["id"]


def test_site_webhook_hears_of_its_containers(no_jobs, deliver_now, receiver, monkeypatch) -> None:
    staff = UserFactory(username="op", is_staff=True)
    owner = UserFactory(username="cy", email="cy@example.org")
    # The owner's preferences are theirs; the site's webhook is the operators' and hears all.
    notifications.notification_kinds_set(user=owner, kinds={"job_failed": False}, actor=owner)
    site = make_site(None)
    notifications.webhook_set(actor=staff, site=site, url=receiver.url, secret="x")
    with pytest.raises(PortalError):  # only staff set a site's webhook
        notifications.webhook_set(actor=owner, site=site, url=receiver.url)
    failed_stop(monkeypatch, owner, site)
    assert mail.outbox == []
    [(_, body)] = receiver.requests
    assert json.loads(body)["data"]["site"] == site.slug


def test_failing_mail_server_fails_no_job(
    no_jobs, deliver_now, settings, monkeypatch, caplog
) -> None:
    with socket.socket() as s:  # a loopback port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", port, 2
    settings.NOTIFY_MAX_RETRIES = 2
    owner = UserFactory(username="dee", email="dee@example.org")
    job = failed_stop(monkeypatch, owner)  # asserts the job is failed, and nothing raised
    assert job.error.startswith("Stopping web1 failed")
    assert deliver_now == [("email", owner.pk)]
    # Tried, retried NOTIFY_MAX_RETRIES times, then given up on (logged, not raised).
    assert caplog.text.count("retrying in") == 2
    assert "gave up on the job_failed notification" in caplog.text


def test_broker_down_fails_no_job(no_jobs, monkeypatch) -> None:
    def down(*args: Any) -> None:
        raise ConnectionError("broker down")

    monkeypatch.setattr(notifications, "enqueue_delivery", down)
    failed_stop(monkeypatch, UserFactory(username="eve", email="eve@example.org"))


def test_muted_kinds_are_not_sent(no_jobs, deliver_now, monkeypatch) -> None:
    owner = UserFactory(username="fay", email="fay@example.org")
    notifications.notification_kinds_set(user=owner, kinds={"job_failed": False}, actor=owner)
    assert notifications.notification_kinds_of(owner)["job_failed"] is False
    assert notifications.notification_kinds_of(owner)["expiry"] is True  # others stay on
    failed_stop(monkeypatch, owner)
    assert mail.outbox == [] and deliver_now == []
    # Another kind still goes.
    notifications.notify(kind=NotificationKind.ALERT, subject="hot", text="CPU", users=[owner])
    assert [m.subject for m in mail.outbox] == ["[Cluster Portal] hot"]


def test_operators_hear_what_is_for_operators(deliver_now) -> None:
    UserFactory(username="op1", is_staff=True, email="op1@example.org")
    UserFactory(username="op2", is_staff=True, email="op2@example.org", is_active=False)
    UserFactory(username="user", email="user@example.org")
    n = notifications.notify(
        kind=NotificationKind.RECONCILE, subject="drift", text="...", operators=True
    )
    assert n == 1 and [m.to for m in mail.outbox] == [["op1@example.org"]]


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://hooks.example.org/x?token=1", True),
        ("http://127.0.0.1:9/x", True),  # allowed below
        ("http://hooks.example.org/x", False),  # http to a host not allowed
        ("ftp://hooks.example.org/x", False),
        ("https:///nohost", False),
        ("https://h.example.org/#frag", False),
        ("not a url", False),
    ],
)
def test_webhook_urls(settings, url, ok) -> None:
    settings.NOTIFY_WEBHOOK_HTTP_HOSTS = ["127.0.0.1"]
    if ok:
        assert notifications.webhook_url_check(url) == url
    else:
        with pytest.raises(ValidationFailed) as caught:
            notifications.webhook_url_check(url)
        assert caught.value.code == "invalid_webhook"


def test_webhook_secrets_are_encrypted_and_never_audited_or_shown() -> None:
    user = UserFactory(username="gus")
    client = Client()
    client.force_login(user)
    answer = check(
        client.patch(
            "/api/v1/me/notifications/",
            {
                "kinds": {"alert": False},
                "webhook_url": "https://hooks.example.org/p?token=tok123",
                "webhook_secret": "hush-hush",
            },
            content_type="application/json",
        )
    )
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["kinds"]["alert"] is False and body["kinds"]["job_failed"] is True
    assert body["webhook"] == {
        "configured": True,
        "host": "hooks.example.org",
        "enabled": True,
        "has_secret": True,
    }
    assert b"hush-hush" not in answer.content and b"tok123" not in answer.content
    with connection.cursor() as cur:
        cur.execute("SELECT url, secret FROM accounts_webhook")
        [(url, secret)] = cur.fetchall()
    assert "tok123" not in url and "hush-hush" not in secret  # ciphertext at rest
    assert Webhook.objects.get().secret == "hush-hush"
    audited = json.dumps(list(AuditEntry.objects.values("summary", "changes")))
    assert "hush-hush" not in audited and "tok123" not in audited
    assert AuditEntry.objects.filter(action="webhook.set").exists()

    refused = check(
        client.patch(
            "/api/v1/me/notifications/",
            {"webhook_url": "http://hooks.example.org/"},
            content_type="application/json",
        )
    )
    assert refused.status_code == 400 and refused.json()["code"] == "invalid_webhook"
    assert "webhook_url" in refused.json()["detail"]
    gone = client.patch(
        "/api/v1/me/notifications/", {"webhook_url": ""}, content_type="application/json"
    )
    assert gone.json()["webhook"]["configured"] is False and not Webhook.objects.exists()


def test_profile_page_sets_kinds_and_webhook(settings) -> None:
    user = UserFactory(username="hal")
    client = Client()
    client.force_login(user)
    page = client.get("/accounts/notifications/")
    assert page.status_code == 200 and "Failed jobs" in page.content.decode()
    on = {f"kind_{k}": "on" for k in NotificationKind.values if k != "expiry"}
    saved = client.post(
        "/accounts/notifications/",
        {**on, "webhook_url": "https://hooks.example.org/in?t=zz9", "webhook_secret": "pst"},
    )
    assert saved.status_code == 302
    assert notifications.notification_kinds_of(user)["expiry"] is False
    assert Webhook.objects.get(user=user).secret == "pst"
    page = client.get("/accounts/notifications/").content.decode()
    assert "hooks.example.org" in page and "zz9" not in page and "pst" not in page
    refused = client.post("/accounts/notifications/", {**on, "webhook_url": "http://x.example/"})
    assert refused.status_code == 400 and "must be https" in refused.content.decode()
    client.post("/accounts/notifications/", {**on, "webhook_remove": "on"})
    assert not Webhook.objects.exists()


def test_resource_request_outcomes_are_told(deliver_now) -> None:
    from containers.resource_requests import (
        resource_request_approve,
        resource_request_create,
        resource_request_deny,
    )

    author = UserFactory(username="ida", email="ida@example.org")
    staff = UserFactory(username="boss", is_staff=True)
    first = resource_request_create(
        user=author, kind="quota", reason="room for a course project", limits={"max_containers": 8}
    )
    resource_request_deny(request=first, actor=staff, note="not this term")
    second = resource_request_create(
        user=author, kind="quota", reason="room for a course, again", limits={"max_containers": 7}
    )
    resource_request_approve(request=second, actor=staff)
    assert [m.subject for m in mail.outbox] == [
        f"[Cluster Portal] Your resource request #{first.pk} was denied",
        f"[Cluster Portal] Your resource request #{second.pk} was approved",
    ]
    assert "not this term" in mail.outbox[0].body
    assert all(m.to == ["ida@example.org"] for m in mail.outbox)


def test_reconciler_tells_operators_of_new_findings_once(deliver_now) -> None:
    from django.utils import timezone

    from containers import reconciler
    from containers.models import ReconcileFinding, ReconcileRun

    UserFactory(username="op", is_staff=True, email="op@example.org")
    site = make_site(None)

    def run_with(*messages: str) -> None:
        run = ReconcileRun.objects.create(site=site, finished_at=timezone.now())
        found = [
            ReconcileFinding(run=run, kind="orphan", action="reported", message=m) for m in messages
        ]
        ReconcileFinding.objects.bulk_create(found)
        p = reconciler._Pass(
            site=site, dry_run=False, actor=None, started=run.started_at, run=run, findings=found
        )
        reconciler._tell_operators(p)

    run_with("CT 150 on pve1 is not the portal's")
    run_with("CT 150 on pve1 is not the portal's")  # the same again: not told again
    run_with("CT 150 on pve1 is not the portal's", "CT 151 on pve2 is not the portal's")
    assert [m.subject for m in mail.outbox] == [
        f"[Cluster Portal] Reconciler: 1 new finding(s) on {site.name}",
        f"[Cluster Portal] Reconciler: 1 new finding(s) on {site.name}",
    ]
    assert "CT 151" in mail.outbox[1].body and "CT 150" not in mail.outbox[1].body
