"""Sending one notification: a mail to a user, or a signed POST to a webhook.

Called by the `accounts.deliver_notification` task, which retries what raises here. A
recipient or webhook that is gone (or switched off) meanwhile is skipped, not retried.

A webhook receives the notification as JSON (`id`, `kind`, `subject`, `text`, `data`,
`created_at`) with `X-Portal-Signature: sha256=<hex>`, the HMAC-SHA256 of the exact body
under the webhook's secret, `X-Portal-Event: <kind>` and `X-Portal-Delivery: <id>` (the
same on a retry, so a receiver can drop duplicates). Redirects are not followed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage

from portal.errors import ValidationFailed

from .notification_models import Webhook
from .notifications import EMAIL, WEBHOOK, webhook_url_check

SIGNATURE_HEADER = "X-Portal-Signature"


class DeliveryFailed(Exception):
    """The receiver refused or could not be reached: the task tries again later."""


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def deliver(channel: str, target: int, payload: dict[str, Any]) -> str:
    if channel == EMAIL:
        return _mail(target, payload)
    if channel == WEBHOOK:
        return _post(target, payload)
    return f"no channel {channel!r}"


def _mail(user_id: int, payload: dict[str, Any]) -> str:
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if user is None or not user.email:
        return "no such user, or no address"
    EmailMessage(
        subject=f"[Cluster Portal] {payload['subject']}",
        body=payload["text"],
        to=[user.email],
        headers={"X-Portal-Event": payload["kind"]},
    ).send()
    return f"mailed {user.email}"


def _post(webhook_id: int, payload: dict[str, Any]) -> str:
    hook = Webhook.objects.filter(pk=webhook_id, enabled=True).first()
    if hook is None:
        return "no such webhook, or switched off"
    try:
        url = webhook_url_check(hook.url)  # the allow-list may have changed since it was set
    except ValidationFailed:
        return f"webhook {hook.pk}: its URL is no longer allowed"
    body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "cluster-portal-notify",
        "X-Portal-Event": payload["kind"],
        "X-Portal-Delivery": payload["id"],
    }
    if hook.secret:
        headers[SIGNATURE_HEADER] = signature(hook.secret, body)
    try:
        answer = requests.post(
            url,
            data=body,
            headers=headers,
            timeout=settings.NOTIFY_WEBHOOK_TIMEOUT,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        raise DeliveryFailed(f"webhook {hook.pk}: {exc.__class__.__name__}") from None
    if not 200 <= answer.status_code < 300:
        raise DeliveryFailed(f"webhook {hook.pk} answered {answer.status_code}")
    return f"webhook {hook.pk}: {answer.status_code}"
