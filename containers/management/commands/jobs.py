"""`manage.py jobs show ID` and `jobs list`."""

from __future__ import annotations

import json
from argparse import ArgumentParser
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from containers.models import Job


class Command(BaseCommand):
    help = "Show jobs and their logs."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        show = sub.add_parser("show", help="a job with its steps and log")
        show.add_argument("id")
        show.add_argument("--json", action="store_true")
        lst = sub.add_parser("list", help="recent jobs")
        lst.add_argument("--limit", type=int, default=20)

    def handle(self, *args: Any, **opts: Any) -> None:
        if opts["action"] == "list":
            for job in Job.objects.select_related("container")[: opts["limit"]]:
                name = job.container.hostname if job.container else "-"
                self.stdout.write(f"{job.pk}  {job.kind:<8} {job.status:<10} {name}")
            return
        try:
            job = Job.objects.select_related("container").get(pk=opts["id"])
        except (Job.DoesNotExist, ValidationError):
            raise CommandError(f"no job {opts['id']}") from None
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
