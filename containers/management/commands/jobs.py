"""`manage.py jobs show ID` (or the start of the id) and `jobs list`."""

from __future__ import annotations

import json
from argparse import ArgumentParser
from typing import Any
from uuid import UUID

from django.core.management.base import BaseCommand, CommandError
from django.db.models import CharField, Value
from django.db.models.functions import Cast, Replace

from containers.models import Job

HEX = frozenset("0123456789abcdef")
SHOWN = 5  # ids named when a prefix fits several jobs


def find_job(given: str) -> Job:
    """The job whose id is `given` or starts with it (as `jobs list` prints it, dashes
    and all); a prefix that fits several jobs is refused, saying how many."""
    text = given.strip().lower()
    bare = text.replace("-", "")
    if not bare or not set(bare) <= HEX or len(bare) > 32:
        raise CommandError(f"no job {given}: a job id is hexadecimal, e.g. 6dde173e")
    qs = Job.objects.select_related("container")
    if len(bare) == 32:
        qs = qs.filter(pk=UUID(bare))
    else:
        # UUIDs are 32 hex digits on SQLite and uuids on PostgreSQL: compare the id's
        # text without dashes, which both give the same way.
        qs = qs.annotate(id_text=Replace(Cast("id", CharField()), Value("-"), Value(""))).filter(
            id_text__startswith=bare
        )
    found = list(qs.order_by("created_at")[:2])
    if not found:
        raise CommandError(f"no job {given}")
    if len(found) > 1:
        count = qs.count()
        some = ", ".join(str(j.pk) for j in qs.order_by("-created_at")[:SHOWN])
        raise CommandError(
            f"{given} is the start of {count} job ids ({some}{', ...' if count > SHOWN else ''}); "
            "give more of the id"
        )
    return found[0]


class Command(BaseCommand):
    help = "Show jobs and their logs."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        show = sub.add_parser("show", help="a job with its steps and log")
        show.add_argument("id", help="the job's id, or its start if no other job's starts so")
        show.add_argument("--json", action="store_true")
        lst = sub.add_parser("list", help="recent jobs")
        lst.add_argument("--limit", type=int, default=20)

    def handle(self, *args: Any, **opts: Any) -> None:
        if opts["action"] == "list":
            for job in Job.objects.select_related("container")[: opts["limit"]]:
                name = job.container.hostname if job.container else "-"
                self.stdout.write(f"{job.pk}  {job.kind:<8} {job.status:<10} {name}")
            return
        job = find_job(opts["id"])
        entries = list(job.log_entries.order_by("id"))
        if opts["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "id": str(job.pk),
                        "kind": job.kind,
                        "status": job.status,
                        "progress": job.progress,
                        "error_code": job.error_code,
                        "error": job.error,
                        "attempts": job.attempts,
                        "steps": job.steps,
                        "log": [
                            {
                                "id": e.id,
                                "level": e.level,
                                "step": e.step,
                                "message": e.message,
                                "at": e.created_at.isoformat(),
                            }
                            for e in entries
                        ],
                    },
                    indent=2,
                )
            )
            return
        name = job.container.hostname if job.container else "-"
        self.stdout.write(
            f"job {job.pk}: {job.kind} {name}, {job.status} ({job.progress}%), attempts {job.attempts}"
        )
        if job.error:
            self.stdout.write(f"error [{job.error_code}]: {job.error}")
        for st in job.steps:
            self.stdout.write(f"  [{st['state']:^8}] {st['title']}")
        self.stdout.write("log:")
        for e in entries:
            self.stdout.write(f"  {e.created_at:%H:%M:%S} {e.level:<7} {e.message}")
