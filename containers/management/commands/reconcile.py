"""`manage.py reconcile [--site S] [--dry-run]`: compare the portal with Proxmox now."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from containers import reconciler
from networking.models import Site


class Command(BaseCommand):
    help = (
        "Compare every live container with Proxmox; record status, put back drifted config, "
        "mark missing CTs error, report orphans, release leaked allocations. "
        "Exit status 1 if anything was found."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--site", help="the site's slug (default: every site)")
        parser.add_argument(
            "--dry-run", action="store_true", help="report only: change nothing anywhere"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        sites = Site.objects.order_by("slug")
        if options["site"]:
            sites = sites.filter(slug=options["site"])
            if not sites.exists():
                raise CommandError(f"no site {options['site']!r}")
        found = 0
        for site in sites:
            run = reconciler.reconcile_site(site=site, dry_run=options["dry_run"])
            self.stdout.write(f"{site.slug}: {run.summary} (report {run.pk})")
            for f in run.findings.order_by("id"):
                self.stdout.write(f"  {f.kind:<11} {f.get_action_display():<26} {f.message}")
            found += run.findings.count()
        if found:
            raise SystemExit(1)
