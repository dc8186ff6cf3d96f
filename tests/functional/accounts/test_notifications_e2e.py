"""Notifications through the real broker and a real Celery worker: queued when the
caller commits, delivered by the worker to a loopback webhook receiver, retried with
backoff while the receiver answers 503, signed the same each time."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def test_worker_delivers_with_retries(worker: Any, webhook_receiver: Any) -> None:
    from auth.notifications import notify, webhook_set
    from tests.factories import UserFactory

    user = UserFactory(username="nia", email="")  # the webhook only
    webhook_set(actor=user, user=user, url=webhook_receiver.url, secret="k")
    webhook_receiver.fail_first = 2  # down twice, then up
    assert notify(kind="alert", subject="memory pressure", text="web1 ...", users=[user]) == 1

    deadline = time.monotonic() + 60
    while len(webhook_receiver.requests) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(webhook_receiver.requests) == 3, webhook_receiver.requests
    ids = {headers["X-Portal-Delivery"] for headers, _ in webhook_receiver.requests}
    assert len(ids) == 1  # one delivery, tried three times
    headers, body = webhook_receiver.requests[-1]
    assert (
        headers["X-Portal-Signature"]
        == "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()
    )
    assert json.loads(body)["subject"] == "memory pressure"
    time.sleep(1.5)  # the success ends it: no fourth attempt
    assert len(webhook_receiver.requests) == 3
