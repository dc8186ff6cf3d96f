"""`manage.py wazuh sweep [--site S] [--dry-run]`: the Wazuh agent sweep now, as beat runs
it daily (containers/wazuh/sweep.py, docs/wazuh.md)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from containers.wazuh.models import WazuhSweepRun
from containers.wazuh.selectors import manager_for_site
from containers.wazuh.sweep import wazuh_sweep_site
from networking.models import Site


class Command(BaseCommand):
    help = "Wazuh: sweep the agents of containers that are gone (sweep)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sweep = sub.add_parser(
            "sweep",
            help="remove the agents the portal enrolled whose container is gone; exit "
            "status 1 if the manager, Proxmox or a node did not answer",
        )
        sweep.add_argument("--site", help="the site's slug (default: every site with a manager)")
        sweep.add_argument(
            "--dry-run", action="store_true", help="report what it would remove; change nothing"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "sweep":
            self.sweep(site_slug=options["site"], dry_run=options["dry_run"])

    def sweep(self, *, site_slug: str | None, dry_run: bool) -> None:
        sites = Site.objects.filter(wazuh__enabled=True).order_by("slug")
        if site_slug:
            site = Site.objects.filter(slug=site_slug).first()
            if site is None:
                raise CommandError(f"no site {site_slug!r}")
            if manager_for_site(site) is None:
                raise CommandError(f"site {site_slug!r} has no enabled Wazuh manager")
            sites = sites.filter(pk=site.pk)
        if not sites.exists():
            self.stdout.write("no site has an enabled Wazuh manager: nothing to sweep")
            return
        failed = False
        for site in sites:
            run = wazuh_sweep_site(site=site, dry_run=dry_run)
            if run is None:  # turned off meanwhile
                continue
            self.report(site, run)
            failed = failed or bool(run.errors)
        if failed:
            raise SystemExit(1)

    def report(self, site: Site, run: WazuhSweepRun) -> None:
        self.stdout.write(f"{site.slug}: {run.summary} (report {run.pk})")
        verb = "would remove" if run.dry_run else "removed"
        for item in run.removed:
            how = "" if item["how"] == "deleted" else " (already gone from the manager)"
            self.stdout.write(f"  {verb:<12} {item['name']:<28} {_what(item)}{how}")
        for item in run.kept:
            self.stdout.write(f"  {'kept':<12} {item['name']:<28} {_what(item)}: {item['reason']}")
        for error in run.errors:
            self.stdout.write(f"  {'error':<12} {error}")


def _what(item: dict[str, Any]) -> str:
    if item["container"] is None:
        return "no container"
    return f"{item['hostname']} (VMID {item['vmid']}, container {item['container']})"
