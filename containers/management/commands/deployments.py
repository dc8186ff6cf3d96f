"""`manage.py deployments sweep [--dry-run]`: LaunchPad's expiry now, as beat runs it daily."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from containers.deployment_expiry import deployments_sweep


class Command(BaseCommand):
    help = "Warn the owners of deployments that expire soon; remove the expired ones."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sweep = sub.add_parser("sweep", help="the daily expiry sweep")
        sweep.add_argument("--dry-run", action="store_true", help="say what it would do")

    def handle(self, *args: Any, **options: Any) -> None:
        report = deployments_sweep(dry_run=options["dry_run"])
        prefix = "would have " if options["dry_run"] else ""
        for line in report.lines():
            self.stdout.write(prefix + line)
        if not report.lines():
            self.stdout.write("nothing to do")
