"""Celery tasks of the accounts app: load by id, call a service, retry what is transient."""

from __future__ import annotations

import logging

from celery import Task, shared_task
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
