"""`manage.py containers create|list|start|stop|restart|resize|delete|sweep` for operators."""

from __future__ import annotations

import json
import sys
from argparse import ArgumentParser
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from containers import selectors, services
from containers.models import Container, ContainerStatus, Template
from networking.models import RouteAccess, Site
from portal.errors import PortalError

from ._jobwait import follow


class Command(BaseCommand):
    help = "Create, list, start, stop, restart, resize and delete containers."
    stealth_options = ("stdin",)  # call_command(..., stdin=...) answers the delete question

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="create a container")
        create.add_argument("--owner", required=True)
        create.add_argument("--hostname", required=True)
        create.add_argument("--template", required=True, help="template name, e.g. debian-12")
        create.add_argument("--site", help="site slug (default: the only site)")
        create.add_argument("--cores", type=int)
        create.add_argument("--memory", type=int, help="MiB")
        create.add_argument("--swap", type=int, help="MiB")
        create.add_argument("--disk", type=int, help="GiB")
        create.add_argument("--ssh-key-file", help="file of SSH public keys for the container")
        create.add_argument(
            "--route-access",
            choices=RouteAccess.values,
            default=RouteAccess.USERS,
            help="who may open its web address (default: users, i.e. signed-in portal users)",
        )
        create.add_argument("--wait", action="store_true")
        create.add_argument("--timeout", type=float, default=900.0)

        lst = sub.add_parser("list", help="list containers")
        lst.add_argument("--json", action="store_true")
        lst.add_argument("--all", action="store_true", help="include deleted ones")

        for action in ("start", "stop", "restart", "delete"):
            p = sub.add_parser(action, help=f"{action} a container")
            p.add_argument("name")
            p.add_argument("--site")
            p.add_argument("--wait", action="store_true")
            p.add_argument("--timeout", type=float, default=900.0)
            if action == "delete":
                p.add_argument(
                    "--yes", action="store_true", help="delete without asking (for scripts)"
                )

        resize = sub.add_parser("resize", help="change a container's resources")
        resize.add_argument("name")
        resize.add_argument("--site")
        resize.add_argument("--cores", type=int)
        resize.add_argument("--memory", type=int, help="MiB")
        resize.add_argument("--swap", type=int, help="MiB")
        resize.add_argument("--disk", type=int, help="GiB (grow only)")
        resize.add_argument("--wait", action="store_true")
        resize.add_argument("--timeout", type=float, default=900.0)

        sweep = sub.add_parser(
            "sweep", help="the daily sweep: container expiry, then job logs, audit and tokens"
        )
        sweep.add_argument("--dry-run", action="store_true", help="say what it would do")

    def handle(self, *args: Any, **opts: Any) -> None:
        self.stdin = opts.get("stdin") or sys.stdin
        try:
            getattr(self, f"do_{opts['action']}")(opts)
        except PortalError as exc:
            raise CommandError(exc.message) from exc

    # -- helpers -----------------------------------------------------------------
    def _site(self, slug: str | None) -> Site:
        if slug:
            try:
                return Site.objects.get(slug=slug)
            except Site.DoesNotExist:
                raise CommandError(f"no site '{slug}'") from None
        sites = list(Site.objects.all()[:2])
        if len(sites) != 1:
            raise CommandError("there is not exactly one site: give --site")
        return sites[0]

    def _container(self, opts: dict[str, Any]) -> Container:
        qs = Container.objects.filter(hostname=opts["name"]).exclude(status=ContainerStatus.DELETED)
        if opts.get("site"):
            qs = qs.filter(site__slug=opts["site"])
        found = list(qs.select_related("site", "node", "template")[:2])
        if not found:
            raise CommandError(f"no container '{opts['name']}'")
        if len(found) > 1:
            raise CommandError(f"'{opts['name']}' exists on several sites: give --site")
        return found[0]

    def _done(self, job_id: str, opts: dict[str, Any], what: str) -> None:
        self.stdout.write(f"job {job_id} queued: {what}")
        if opts.get("wait"):
            job = follow(job_id, self.stdout, timeout=opts["timeout"])
            self.stdout.write(self.style.SUCCESS(f"job {job.pk} succeeded"))

    # -- actions -------------------------------------------------------------------
    def do_create(self, opts: dict[str, Any]) -> None:
        site = self._site(opts.get("site"))
        user_model = get_user_model()
        try:
            owner = user_model.objects.get(**{user_model.USERNAME_FIELD: opts["owner"]})
        except user_model.DoesNotExist:
            raise CommandError(f"no user '{opts['owner']}'") from None
        try:
            template = Template.objects.get(site=site, name=opts["template"])
        except Template.DoesNotExist:
            names = (
                ", ".join(site.templates.filter(enabled=True).values_list("name", flat=True))
                or "none"
            )
            raise CommandError(
                f"no template '{opts['template']}' on {site.slug} (available: {names})"
            ) from None
        keys = ""
        if opts.get("ssh_key_file"):
            with open(opts["ssh_key_file"], encoding="utf-8") as fh:
                keys = fh.read()
        job = services.container_create(
            owner=owner,
            hostname=opts["hostname"],
            template=template,
            site=site,
            cores=opts.get("cores"),
            memory_mib=opts.get("memory"),
            swap_mib=opts.get("swap"),
            disk_gib=opts.get("disk"),
            ssh_public_keys=keys,
            route_access=opts["route_access"],
        )
        c = job.container
        assert c is not None
        self._done(
            str(job.pk), opts, f"create {c.hostname} as CT {c.vmid} on {c.node.name}, {c.ip}"
        )

    def do_list(self, opts: dict[str, Any]) -> None:
        qs = selectors.containers_all(include_deleted=opts["all"]).order_by("site", "vmid")
        rows = [
            {
                "vmid": c.vmid,
                "hostname": c.hostname,
                "node": c.node.name,
                "status": c.status,
                "ip": c.ip,
                "site": c.site.slug,
                "owner": c.owner.get_username(),
            }
            for c in qs
        ]
        if opts["json"]:
            self.stdout.write(json.dumps(rows, indent=2))
            return
        self.stdout.write(f"{'VMID':>6}  {'HOSTNAME':<24} {'NODE':<8} {'STATUS':<13} IP")
        for r in rows:
            self.stdout.write(
                f"{r['vmid']:>6}  {r['hostname']:<24} {r['node']:<8} {r['status']:<13} {r['ip']}"
            )

    def _simple(self, opts: dict[str, Any], fn: Any, verb: str) -> None:
        c = self._container(opts)
        job = fn(container=c, actor=None)
        self._done(str(job.pk), opts, f"{verb} {c.hostname}")

    def do_start(self, opts: dict[str, Any]) -> None:
        self._simple(opts, services.container_start, "start")

    def do_stop(self, opts: dict[str, Any]) -> None:
        self._simple(opts, services.container_stop, "stop")

    def do_restart(self, opts: dict[str, Any]) -> None:
        self._simple(opts, services.container_restart, "restart")

    def do_delete(self, opts: dict[str, Any]) -> None:
        c = self._container(opts)
        if not opts.get("yes"):
            self._confirm_delete(c)
        job = services.container_delete(container=c, actor=None)
        self._done(str(job.pk), opts, f"delete {c.hostname}")

    def _confirm_delete(self, c: Container) -> None:
        """A delete takes the disk with it: ask, unless --yes; never guess without a person."""
        stdin = self.stdin
        if not stdin.isatty():
            raise CommandError(
                f"not deleting {c.hostname}: there is no terminal to confirm on; "
                "add --yes to delete without asking"
            )
        self.stdout.write(
            f"Delete {c.hostname} (CT {c.vmid} on {c.node.name}, owner "
            f"{c.owner.get_username()}) and its disk? Type its hostname to confirm: ",
            ending="",
        )
        self.stdout.flush()
        answer = stdin.readline().strip()
        if answer != c.hostname:
            raise CommandError(f"not deleting {c.hostname}: the answer was not its hostname")

    def do_resize(self, opts: dict[str, Any]) -> None:
        c = self._container(opts)
        job = services.container_resize(
            container=c,
            actor=None,
            cores=opts.get("cores"),
            memory_mib=opts.get("memory"),
            swap_mib=opts.get("swap"),
            disk_gib=opts.get("disk"),
        )
        self._done(str(job.pk), opts, f"resize {c.hostname}")

    def do_sweep(self, opts: dict[str, Any]) -> None:
        from containers.container_expiry import containers_sweep
        from containers.retention import retention_sweep

        dry = bool(opts["dry_run"])
        prefix = "would have " if dry else ""
        lines = containers_sweep(dry_run=dry).lines()
        for line in lines:
            self.stdout.write(prefix + line)
        if not lines:
            self.stdout.write("no container to warn, stop or delete")
        for what, n in retention_sweep(dry_run=dry).items():
            self.stdout.write(f"{prefix}pruned {n} {what}")
