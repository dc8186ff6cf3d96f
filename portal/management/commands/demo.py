"""`manage.py demo`: the whole portal on one machine, with the simulator as Proxmox.

Starts pvesim (state under var/pvesim), a Celery worker on the file broker and the
web server; seeds the site `local` with pve1 (slot 1) and pve2 (slot 0), the
simulator's templates and an operator `admin`. A second run finds everything as it
was left. Ctrl-C stops what it started.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from portal.procs import CeleryWorker, Managed, free_port, port_open, wait_until

TOKEN_ID = "portal@pve!portal"


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = "Run the portal on the embedded defaults: SQLite, the simulator, a file broker."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--sim-port", type=int, default=18006)
        parser.add_argument("--seed-only", action="store_true", help="seed, print, and exit")

    def handle(self, *args: Any, **opts: Any) -> None:
        if not settings.DEMO:
            raise CommandError("the demo runs with PORTAL_DEMO=1 (make demo sets it)")
        var = Path(settings.VAR_DIR)
        (var / "log").mkdir(parents=True, exist_ok=True)
        state_path = var / "demo.json"
        state: dict[str, str] = json.loads(state_path.read_text()) if state_path.exists() else {}
        state.setdefault("token_secret", str(uuid.uuid4()))
        first_admin = "admin_password" not in state
        state.setdefault("admin_password", secrets.token_urlsafe(12))
        state_path.write_text(json.dumps(state, indent=2))
        state_path.chmod(0o600)

        call_command("migrate", interactive=False, verbosity=0)
        started: list[Any] = []

        def stop_all(*_: Any) -> None:
            for proc in reversed(started):
                proc.stop()
            started.clear()

        try:
            from pvesim.testing import SimulatorProcess

            sim_port = (
                opts["sim_port"] if not port_open("127.0.0.1", opts["sim_port"]) else free_port()
            )
            sim = SimulatorProcess(
                var / "pvesim",
                nodes=("pve1", "pve2"),
                tokens={TOKEN_ID: state["token_secret"]},
                task_seconds=2.0,
                port=sim_port,
                dhcp_hosts=var / "gateway" / "dnsmasq" / "dhcp-hosts",
            )
            (var / "gateway" / "dnsmasq").mkdir(parents=True, exist_ok=True)
            (var / "gateway" / "dnsmasq" / "dhcp-hosts").touch()
            sim.start()
            started.append(sim)
            self.stdout.write(f"pvesim (Proxmox simulator) on {sim.url}, state in {var / 'pvesim'}")

            site = self._seed(sim, state, first_admin)
            if opts["seed_only"]:
                return

            # The gateway (var/gateway, private nginx/dnsmasq, its worker): before the
            # other processes, which inherit the settings it exports.
            from networking.gateway import start_demo_gateway

            started.extend(start_demo_gateway(var, say=self.stdout.write))

            worker = CeleryWorker(
                log_path=var / "log" / "worker.log",
                env={"PORTAL_DEMO": "1"},
                concurrency=4,
                name="demo",
                beat=True,
            )
            worker.start()
            started.append(worker)
            self.stdout.write(
                f"celery worker (pid {worker.pid}), log in {var / 'log' / 'worker.log'}"
            )

            web = Managed(
                [
                    sys.executable,
                    "manage.py",
                    "runserver",
                    f"127.0.0.1:{opts['port']}",
                    "--noreload",
                ],
                log_path=var / "log" / "web.log",
                env={**os.environ},
            )
            web.start()
            started.append(web)
            wait_until(lambda: port_open("127.0.0.1", opts["port"]), timeout=30, what="web server")
            self._banner(opts["port"], site.slug)
            signal.signal(signal.SIGTERM, _interrupt)
            while web.alive():
                time.sleep(0.5)
            self.stderr.write("the web server stopped; see var/log/web.log")
        except KeyboardInterrupt:
            self.stdout.write("\nstopping...")
        finally:
            stop_all()

    def _seed(self, sim: Any, state: dict[str, str], first_admin: bool) -> Any:
        from containers import services as container_services
        from networking.models import Node, Site

        site, _ = Site.objects.get_or_create(
            slug="local",
            defaults={
                "name": "Local demo",
                "domain": "apps.localhost",
                "internal_domain": "cluster.localhost",
                # A loopback subnet: what the demo gateway proxies to stays on this machine.
                "subnet": "127.15.0.0/16",
                "gateway_ip": "127.15.0.1",
                "reserved_ranges": "127.15.0.0-127.15.0.255",
                "dhcp_range_start": "127.15.255.0",
                "dhcp_range_end": "127.15.255.254",
            },
        )
        for name, slot in (("pve1", 1), ("pve2", 0)):
            node = Node.objects.filter(site=site, name=name).first() or Node(
                site=site, name=name, slot=slot
            )
            node.api_url = sim.url
            node.token_id = TOKEN_ID
            node.token_secret = state["token_secret"]
            node.ca_bundle = str(sim.ca_path)
            node.save()
        imported = container_services.templates_import(site=site)
        if imported:
            self.stdout.write("templates: " + ", ".join(t.name for t in imported))

        user_model = get_user_model()
        admin = user_model.objects.filter(username="admin").first()
        if admin is None:
            admin = user_model.objects.create_superuser(
                "admin", "admin@localhost", state["admin_password"]
            )
        if first_admin:
            self.stdout.write(
                self.style.WARNING(
                    f"operator account: admin / {state['admin_password']}  "
                    "(shown once; kept in var/demo.json)"
                )
            )
        else:
            self.stdout.write("operator account: admin (password unchanged, in var/demo.json)")
        return site

    def _banner(self, port: int, site: str) -> None:
        self.stdout.write(
            self.style.SUCCESS(
                f"\nCluster Portal demo is running: http://127.0.0.1:{port}/ (operators: /admin/)"
            )
        )
        self.stdout.write(
            "From another shell, create a container and watch it reach running:\n"
            "  PORTAL_DEMO=1 .venv/bin/python manage.py containers create --owner admin "
            "--hostname hello --template debian-12 --wait\n"
            "  PORTAL_DEMO=1 .venv/bin/python manage.py containers list\n"
            "Ctrl-C stops everything the demo started."
        )
