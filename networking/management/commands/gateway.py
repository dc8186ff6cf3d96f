"""`manage.py gateway render|apply|status --site SLUG`: the gateway's files, by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from networking.models import ConfigRevision, GatewayState, PortMapping, RevisionStatus, Route, Site


class Command(BaseCommand):
    help = "Render, apply or inspect a site's gateway configuration (NGINX and dnsmasq)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        r = sub.add_parser("render", help="write a complete, self-contained configuration into DIR")
        r.add_argument("--site", required=True)
        r.add_argument("--out", required=True, type=Path)
        a = sub.add_parser("apply", help="render, validate, swap and reload on this gateway host")
        a.add_argument("--site", required=True)
        a.add_argument("--force", action="store_true", help="reload even if nothing changed")
        s = sub.add_parser("status", help="the last revision and what is published")
        s.add_argument("--site", required=True)

    def _site(self, slug: str) -> Site:
        site = Site.objects.filter(slug=slug).first()
        if site is None:
            raise CommandError(f"no site '{slug}'")
        return site

    def handle(self, *args: Any, **opts: Any) -> None:
        site = self._site(opts["site"])
        getattr(self, f"_{opts['action']}")(site, opts)

    def _render(self, site: Site, opts: dict[str, Any]) -> None:
        from networking.gateway import render_to_directory
        from networking.render import RenderError, UnsafeValue

        out: Path = opts["out"]
        try:
            rendered = render_to_directory(site, out)
        except (RenderError, UnsafeValue) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"wrote {len(rendered.files)} files to {out} ({rendered.counts['routes']} routes, "
            f"{rendered.counts['port_mappings']} port mappings, hash {rendered.content_hash[:12]})"
        )
        self._excluded(rendered.excluded)
        self.stdout.write(
            f"check: nginx -t -c {out}/nginx/nginx.conf -p {out}/nginx/\n"
            f"       nginx -t -c {out}/nginx/stream-<i>.conf -p {out}/nginx/ (each stream shard)\n"
            f"       dnsmasq --test --conf-file={out}/dnsmasq/dnsmasq.conf"
        )

    def _apply(self, site: Site, opts: dict[str, Any]) -> None:
        from networking.gateway import apply_site
        from networking.services import request_apply

        request_apply(site, reason="manage.py gateway apply")
        outcome = apply_site(site, force=opts["force"], coalesce=False)
        rev = outcome.revision
        if rev is None:
            self.stdout.write("nothing to do: the last apply covers every change")
            return
        self._revision(rev)
        if not rev.succeeded:
            raise CommandError(f"the apply failed ({rev.error_code}); the live files keep serving")

    def _status(self, site: Site, opts: dict[str, Any]) -> None:
        state = GatewayState.objects.filter(site=site).first()
        self.stdout.write(
            f"site {site.slug}: {Route.objects.filter(site=site).count()} routes, "
            f"{PortMapping.objects.filter(site=site).count()} port mappings"
        )
        if state:
            self.stdout.write(f"generation requested {state.requested}, applied {state.applied}")
        last = ConfigRevision.objects.filter(site=site).first()
        if last is None:
            self.stdout.write("never applied")
            return
        self._revision(last)
        good = (
            ConfigRevision.objects.filter(site=site).exclude(status=RevisionStatus.FAILED).first()
        )
        if good and good.pk != last.pk:
            self.stdout.write(
                f"last good revision: #{good.pk} at {good.created_at:%Y-%m-%d %H:%M:%S}"
            )

    def _revision(self, rev: ConfigRevision) -> None:
        self.stdout.write(
            f"revision #{rev.pk} generation {rev.generation}: {rev.status} in {rev.duration_ms} ms "
            f"at {rev.created_at:%Y-%m-%d %H:%M:%S} (hash {rev.content_hash[:12] or '-'})"
        )
        if rev.counts:
            self.stdout.write("  " + ", ".join(f"{k} {v}" for k, v in rev.counts.items()))
        if rev.actions:
            self.stdout.write("  " + "; ".join(rev.actions))
        if rev.error:
            self.stdout.write(self.style.ERROR("  " + rev.error.replace("\n", "\n  ")))
        self._excluded(rev.excluded)

    def _excluded(self, excluded: list[dict[str, Any]]) -> None:
        for item in excluded:
            self.stdout.write(
                self.style.WARNING(
                    f"  left out {item['kind']} {item['id']} {item['name']}: {item['reason']}"
                )
            )
