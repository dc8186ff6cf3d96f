"""Retention: what the portal stops keeping, swept daily with container expiry.

- job log lines of finished jobs older than JOB_LOG_RETENTION_DAYS (the job rows stay:
  their status, error and timestamps are history);
- audit entries older than AUDIT_RETENTION_DAYS (auth.audit.audit_prune);
- API tokens expired or revoked more than API_TOKEN_RETENTION_DAYS ago.

A setting of 0 keeps everything of its kind.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from auth.audit import audit_prune
from auth.tokens import tokens_prune

from .models import FINAL_JOB_STATUSES, JobLogEntry

log = logging.getLogger(__name__)


def job_logs_prune(*, now: datetime | None = None, dry_run: bool = False) -> int:
    keep = settings.JOB_LOG_RETENTION_DAYS
    if keep <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=keep)
    old = JobLogEntry.objects.filter(created_at__lt=cutoff, job__status__in=FINAL_JOB_STATUSES)
    if dry_run:
        return old.count()
    deleted, _ = old.delete()
    return deleted


def retention_sweep(*, now: datetime | None = None, dry_run: bool = False) -> dict[str, int]:
    """How many of each were deleted (with `dry_run`, would be)."""
    now = now or timezone.now()
    counts = {
        "job log lines": job_logs_prune(now=now, dry_run=dry_run),
        "audit entries": audit_prune(now=now, dry_run=dry_run),
        "API tokens": tokens_prune(now=now, dry_run=dry_run),
    }
    if any(counts.values()) and not dry_run:
        log.info("retention: deleted %s", ", ".join(f"{n} {what}" for what, n in counts.items()))
    return counts
