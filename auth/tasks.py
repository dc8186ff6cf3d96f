"""Celery tasks of the accounts app: load by id, call a service, retry what is transient."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, shared_task
from django.conf import settings
from django.contrib.auth import get_user_model

from portal.celery import backoff
from portal.errors import UpstreamUnavailable

from . import sshkeys
from .audit import audit_prune

log = logging.getLogger(__name__)


@shared_task(
    bind=True,
    name="accounts.sync_ssh_keys",
    acks_late=True,
    max_retries=8,
    ignore_result=True,
)
def sync_ssh_keys(self: Task, user_id: int) -> str:
    """Write a user's portal SSH keys to the directory's sshPublicKey (idempotent)."""
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None:
        return "the user is gone"
    try:
        outcome = sshkeys.ssh_keys_to_directory(user=user)
    except UpstreamUnavailable as exc:
        countdown = backoff(self.request.retries + 1, base=2.0, cap=300.0)
        log.warning("SSH keys of %s: %s; retrying in %s s", user, exc.message, countdown)
        raise self.retry(countdown=countdown) from None
    log.info("SSH keys of %s: %s", user, outcome)
    return outcome


@shared_task(name="accounts.prune_audit", ignore_result=True)
def prune_audit() -> int:
    """Delete audit entries older than AUDIT_RETENTION_DAYS (celery beat, daily)."""
    return audit_prune()


@shared_task(
    bind=True,
    name="accounts.deliver_notification",
    acks_late=True,
    max_retries=None,  # counted below against NOTIFY_MAX_RETRIES, read at run time
    ignore_result=True,
)
def deliver_notification(self: Task, channel: str, target: int, payload: dict[str, Any]) -> str:
    """Send one notification by mail or webhook; retry with backoff, then give up quietly.

    Whatever fails here fails only this delivery: the job or sweep that asked for it has
    long finished (it was queued on commit)."""
    from .notification_delivery import deliver

    try:
        return deliver(channel, target, payload)
    except Exception as exc:
        attempt = self.request.retries + 1
        if attempt > settings.NOTIFY_MAX_RETRIES:
            log.error(
                "gave up on the %s notification %s to %s %s after %d attempts: %s",
                payload.get("kind"),
                payload.get("id"),
                channel,
                target,
                attempt,
                exc,
            )
            return "gave up"
        countdown = backoff(
            attempt, base=settings.NOTIFY_RETRY_BACKOFF, cap=settings.NOTIFY_RETRY_BACKOFF_MAX
        )
        log.warning(
            "the %s notification to %s %s failed (%s); retrying in %s s",
            payload.get("kind"),
            channel,
            target,
            exc,
            countdown,
        )
        raise self.retry(countdown=countdown) from None
