"""Shared by the management commands: follow a job until it ends, printing its log."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import CommandError

from containers.models import Job, JobStatus


def follow(job_id: str, out: Any, *, timeout: float = 900.0, poll: float = 0.2) -> Job:
    deadline = time.monotonic() + timeout
    last = 0
    while True:
        job = Job.objects.get(pk=job_id)
        for entry in job.log_entries.filter(id__gt=last).order_by("id"):
            last = entry.id
            out.write(f"  {entry.created_at:%H:%M:%S} {entry.level:<7} {entry.message}\n")
        if job.is_final:
            if job.status != JobStatus.SUCCEEDED:
                raise CommandError(job.error or f"job {job.pk} {job.status}")
            return job
        if time.monotonic() > deadline:
            raise CommandError(f"job {job.pk} is still {job.status} after {timeout:.0f} s")
        time.sleep(poll)
