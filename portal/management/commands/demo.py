"""`manage.py demo`: the whole portal on one machine, with the simulator as Proxmox.

Starts pvesim with guest emulation (state under var/pvesim, the containers' files in a
directory of /var/tmp recorded in var/demo.json), a private slapd with the users alice and bob
(var/ldap, when slapd is installed), a private gateway (nginx and dnsmasq on loopback
high ports, var/gateway), Celery workers on the file broker and the web server; seeds
the site `local` with pve1 (slot 1) and pve2 (slot 0), the simulator's templates and an
operator `admin`. A second run finds everything as it was left. Ctrl-C (or SIGTERM)
stops what it started, by PID; a start that fails does too (see demo_stack.py).
"""

from __future__ import annotations

import io
import json
import os
import secrets
import signal
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from portal.celery import POOL_QUEUE
from portal.management import demo_stack as stack
from portal.procs import BASE_DIR, CeleryWorker, Managed, port_open, wait_until

TOKEN_ID = "portal@pve!portal"


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = (
        "Run the portal on the embedded defaults: SQLite, the Proxmox simulator, a file "
        "broker, a private LDAP directory and gateway. Ctrl-C stops it."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--port",
            type=int,
            default=8000,
            help="the portal's port on 127.0.0.1 (default 8000); it must be free",
        )
        parser.add_argument(
            "--sim-port",
            type=int,
            default=18006,
            help="the simulator's preferred port (default 18006; a free one if it is taken)",
        )
        parser.add_argument("--seed-only", action="store_true", help="seed, print, and exit")

    def handle(self, *args: Any, **opts: Any) -> None:
        if not settings.DEMO:
            raise CommandError("the demo runs with PORTAL_DEMO=1 (make demo sets it)")
        # Line by line even into a pipe (`make demo | tee`, a test): the banner is read live.
        for stream in (sys.stdout, sys.stderr):
            if isinstance(stream, io.TextIOWrapper):
                stream.reconfigure(line_buffering=True)
        # From here on SIGINT, SIGTERM and SIGHUP stop the demo and what it started. SIGINT
        # even when inherited as ignored (a job started in the background by a script):
        # Ctrl-C is how the demo says it stops. SIGHUP stays ignored under nohup.
        signal.signal(signal.SIGINT, _interrupt)
        signal.signal(signal.SIGTERM, _interrupt)
        if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
            signal.signal(signal.SIGHUP, _interrupt)
        var = Path(settings.VAR_DIR)
        try:
            with stack.demo_lock(var):
                self._run(var, opts)
        except KeyboardInterrupt:  # before anything was started (migrating, say)
            self.stdout.write("\nstopped")

    def _run(self, var: Path, opts: dict[str, Any]) -> None:
        began = time.monotonic()
        say = self.stdout.write
        (var / "log").mkdir(parents=True, exist_ok=True)
        run_file = var / "demo-run.json"
        left = stack.stop_leftovers(run_file, var / "gateway")
        if left:
            say("stopped what an earlier demo left running: " + ", ".join(left))
        ports, notes = stack.choose_ports(opts["port"], opts["sim_port"])
        for note in notes:
            say(note)

        state_path = var / "demo.json"
        state = stack.load_state(state_path)
        state.setdefault("token_secret", str(uuid.uuid4()))
        first_admin = "admin_password" not in state
        state.setdefault("admin_password", _password())
        stack.save_state(state_path, state)
        call_command("migrate", interactive=False, verbosity=0)

        started = stack.Started(run_file, ports=ports)
        try:
            sim = self._sim(var, state, ports["sim"])
            stack.save_state(state_path, state)  # the containers' directory, if new
            started.launch("pvesim", sim, lambda: _pid(sim))
            say(
                f"pvesim (Proxmox simulator) on {sim.url}, state in {var / 'pvesim'}, "
                f"containers' files in {sim.guest_dir}"
            )
            directory, new_directory = stack.demo_directory(var, state, ports["ldap"])
            stack.save_state(state_path, state)
            env = self._portal_env(var, ports["web"])
            if directory is not None:
                started.launch("slapd", directory, lambda: {"slapd": directory.pid or 0})
                env.update(directory.settings(staff_group=stack.STAFF_GROUP))
                # What Proxmox's LDAP realm finds on a sync: the same people.
                sim.admin.set_directory_users("ldap", [uid for uid, *_ in stack.DEMO_PEOPLE])
            site = self._seed(sim, state, first_admin)
            if opts["seed_only"]:
                self._accounts(state, directory, new_directory)
                return
            os.environ.update(env)  # the processes started below inherit it
            self._start_gateway(var, site, ports, env, started)
            worker = CeleryWorker(
                log_path=var / "log" / "worker.log", env=env, concurrency=4, name="demo", beat=True
            )
            started.launch(
                "celery worker", worker, lambda: {"celery worker": worker.pid}, group="workers"
            )
            # The warm pool's refills: their own queue and worker (docs/pool.md).
            pool_worker = CeleryWorker(
                log_path=var / "log" / "pool-worker.log",
                env=env,
                queues=POOL_QUEUE,
                concurrency=1,
                name="demo-pool",
            )
            started.launch(
                "pool worker",
                pool_worker,
                lambda: {"pool worker": pool_worker.pid},
                group="workers",
            )
            web = self._web(var, ports["web"])
            started.launch("web server", web, lambda: {"web server": web.pid})
            self._check_web(web, ports["web"])
            self._banner(site, ports, state, directory, new_directory, time.monotonic() - began)
            while web.alive():
                time.sleep(0.5)
            self.stderr.write(f"the web server stopped; see {var / 'log' / 'web.log'}")
        except KeyboardInterrupt:
            say("\nstopping...")
        finally:
            # A second Ctrl-C must not cut the cleanup short: every step has a time limit.
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, signal.SIG_IGN)
            started.stop_all(self.stderr.write)

    # -- the pieces ------------------------------------------------------------------------------
    @staticmethod
    def _sim(var: Path, state: dict[str, Any], port: int) -> Any:
        from pvesim.testing import SimulatorProcess

        dhcp_hosts = var / "gateway" / "dnsmasq" / "dhcp-hosts"
        dhcp_hosts.parent.mkdir(parents=True, exist_ok=True)
        dhcp_hosts.touch()
        # Guest emulation: a CT gets a real sshd on its 127.15.x.y address (the key its
        # deploys log in with), and what its units start really listens there.
        return SimulatorProcess(
            var / "pvesim",
            nodes=("pve1", "pve2"),
            tokens={TOKEN_ID: state["token_secret"]},
            task_seconds=2.0,
            port=port,
            dhcp_hosts=dhcp_hosts,
            guest_emulation=True,
            # A CT's first lease, before the gateway serves its reservation: the site's
            # DHCP range, which the portal never hands out.
            bridges=["vmbr0=127.15.255.10-127.15.255.254/16,127.15.0.1"],
            guest_dir=stack.guest_dir(var, state),
        )

    @staticmethod
    def _portal_env(var: Path, port: int) -> dict[str, str]:
        """The settings that depend on --port, for every process the demo starts."""
        portal = f"http://127.0.0.1:{port}"
        env = {
            "PORTAL_DEMO": "1",
            # The worker logs in to deployments' containers with the key; the web server
            # leaves pushed sources for it (LaunchPad).
            "DEPLOY_KEY_DIR": str(var / "deploy-key"),
            "DEPLOY_SOURCE_DIR": str(var / "deploy-sources"),
            "GATEWAY_AUTH_URL": f"{portal}/gateway/auth",
            "GATEWAY_PORTAL_URL": portal,
        }
        if not os.environ.get("CSRF_TRUSTED_ORIGINS"):
            env["CSRF_TRUSTED_ORIGINS"] = f"{portal},http://localhost:{port}"
        return env

    def _start_gateway(
        self, var: Path, site: Any, ports: dict[str, int], env: dict[str, str], started: Any
    ) -> None:
        """nginx and dnsmasq (when installed) configured for this run's ports, the site
        applied, and the gateway's own worker."""
        from networking import site_services
        from networking.gateway import LocalGateway, apply_site
        from networking.models import Site
        from networking.services import request_apply
        from portal.celery import gateway_queue

        tls = var / "gateway-tls"
        gw = LocalGateway(
            var,
            domains=[s.domain for s in Site.objects.order_by("pk")],
            ports={k: ports[k] for k in ("http", "https", "status", "dns")},
            GATEWAY_DIR=str(var / "gateway"),
            GATEWAY_TLS_CERTIFICATE=str(tls / "fullchain.pem"),
            GATEWAY_TLS_CERTIFICATE_KEY=str(tls / "privkey.pem"),
            GATEWAY_AUTH_URL=env["GATEWAY_AUTH_URL"],
            GATEWAY_PORTAL_URL=env["GATEWAY_PORTAL_URL"],
        )
        gw.tls_dir = tls
        started.launch("gateway", gw, gw.pids)
        env.update(gw.env)
        os.environ.update(gw.env)
        admin = get_user_model().objects.get(username="admin")
        # Links to containers name the port browsers reach the gateway on.
        site_services.site_update(site=site, actor=admin, values={"public_port": ports["https"]})
        request_apply(site, reason="demo start")
        outcome = apply_site(site, coalesce=False)
        if outcome.revision is not None and not outcome.ok:
            raise CommandError(f"the gateway could not apply the site: {outcome.revision.error}")
        worker = CeleryWorker(
            log_path=var / "log" / "gateway-worker.log",
            env=env,
            queues=gateway_queue(site.slug),
            concurrency=2,
            name="demo-gateway",
        )
        started.launch(
            "gateway worker", worker, lambda: {"gateway worker": worker.pid}, group="workers"
        )
        running = [
            name
            for name, on in (
                (
                    f"nginx (HTTP, and {settings.GATEWAY_STREAM_SHARDS} stream shards for the ports)",
                    settings.GATEWAY_NGINX_ENABLED,
                ),
                ("dnsmasq", settings.GATEWAY_DNSMASQ_ENABLED),
            )
            if on
        ]
        self.stdout.write(
            f"gateway in {var / 'gateway'}: "
            + (", ".join(running) or "nginx and dnsmasq are not installed: files only")
        )

    @staticmethod
    def _web(var: Path, port: int) -> Managed:
        return Managed(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            log_path=var / "log" / "web.log",
            env={**os.environ},
        )

    @staticmethod
    def _check_web(web: Managed, port: int) -> None:
        """The port answers, and it is our web server that answers (before any banner)."""

        def ready() -> bool:
            if not web.alive():
                raise CommandError(
                    f"the web server exited:\n{stack.tail(web.log_path)}"
                    f"(is port {port} free? choose another with --port N)"
                )
            return port_open("127.0.0.1", port)

        wait_until(ready, timeout=60, what="the web server")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as r:
            json.loads(r.read())
        if not web.alive():
            raise CommandError(f"port {port} answers, but not this demo's web server")

    def _seed(self, sim: Any, state: dict[str, Any], first_admin: bool) -> Any:
        from containers import health, template_services
        from networking.models import Node, Site

        site, _ = Site.objects.get_or_create(
            slug="local",
            defaults={
                "name": "Local demo",
                # Browsers send every *.localhost name to this machine.
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
            # A run stopped while a worker was asking the simulator can leave the node marked
            # offline; this run's simulator answers, and the probe says so before anything
            # (the templates' import below) needs an active node.
            health.node_check(node=node)
        imported = template_services.templates_import(site=site)
        if imported:
            self.stdout.write("templates: " + ", ".join(t.name for t in imported))
        stack.demo_pools(site)
        user_model = get_user_model()
        if not user_model.objects.filter(username="admin").exists():
            user_model.objects.create_superuser("admin", "admin@localhost", state["admin_password"])
        if first_admin:
            self.stdout.write(
                self.style.WARNING(
                    f"operator account: admin / {state['admin_password']}  "
                    "(shown once; kept in var/demo.json)"
                )
            )
        return site

    # -- what the user reads ---------------------------------------------------------------------
    def _accounts(self, state: dict[str, Any], directory: Any, new_directory: bool) -> None:
        say = self.stdout.write
        say("Log in as:")
        say("  admin   the operator (a local account; its password is in var/demo.json)")
        if directory is None:
            say(
                self.style.WARNING(
                    "  No LDAP directory: slapd is not installed (apt-get install slapd), so only "
                    "local accounts log in and containers get no access groups."
                )
            )
            return
        ldap = state["ldap"]
        for uid, _, _, groups in stack.DEMO_PEOPLE:
            role = "an operator (staff)" if stack.STAFF_GROUP in groups else "a user"
            secret = f" / {ldap[uid]}" if new_directory else ""
            say(f"  {uid}{secret}   {role}, from the directory at {directory.uri}")
        if new_directory:
            say(self.style.WARNING("  (these passwords are shown once; kept in var/demo.json)"))
        else:
            say("  (their passwords are in var/demo.json)")

    def _banner(
        self,
        site: Any,
        ports: dict[str, int],
        state: dict[str, Any],
        directory: Any,
        new_directory: bool,
        seconds: float,
    ) -> None:
        from containers.models import LIVE, Container

        say = self.stdout.write
        portal = f"http://127.0.0.1:{ports['web']}"
        https = ports["https"]
        say(
            self.style.SUCCESS(
                f"\nCluster Portal demo is running: {portal}/  (started in {seconds:.1f} s)"
            )
        )
        self._accounts(state, directory, new_directory)
        host = f"<hostname>.{site.domain}"
        if settings.GATEWAY_NGINX_ENABLED:
            ca = Path(settings.GATEWAY_TLS_CERTIFICATE).with_name("ca.pem")
            say(
                f"Containers are published at https://{host}:{https}/ (Chromium and Firefox "
                f"send *.localhost to this machine; the certificate's CA is {ca})"
            )
            say(
                f"  SSH: ssh -p <its SSH port> <you>@{host}  (where the system resolver does "
                "not know *.localhost: <you>@127.0.0.1)"
            )
        if settings.GATEWAY_DNSMASQ_ENABLED:
            say(
                f"  internal name: dig @127.0.0.1 -p {ports['dns']} "
                f"<hostname>.{site.internal_domain}"
            )
        live = Container.objects.filter(LIVE, site=site).select_related("owner", "site")
        for c in live.prefetch_related("port_mappings").order_by("hostname")[:10]:
            ssh = c.ssh_command
            say(f"  {c.hostname}: {c.url}" + (f"   {ssh}" if ssh else ""))
        python = os.path.relpath(sys.executable, BASE_DIR)
        python = sys.executable if python.startswith("..") else python
        say(
            "From another shell, create a container and watch it reach running:\n"
            f"  PORTAL_DEMO=1 {python} manage.py containers create --owner admin "
            "--hostname hello --template debian-12 --wait\n"
            f"  PORTAL_DEMO=1 {python} manage.py containers list"
        )
        self._cli_banner(portal, directory)
        say("Ctrl-C stops everything the demo started.")

    def _cli_banner(self, portal: str, directory: Any) -> None:
        """How to do the same as a user, with portalctl (docs/cli.md)."""
        script = Path(sys.executable).with_name("portalctl")
        if not script.exists():
            self.stdout.write("The CLI: pip install -e ./portalctl, then portalctl login " + portal)
            return
        cli = os.path.relpath(script, BASE_DIR)
        cli = str(script) if cli.startswith("..") else cli
        user = "alice" if directory is not None else "admin"
        self.stdout.write(
            f"Or as {user}, with the command-line client (docs/cli.md):\n"
            f"  {cli} login {portal} -u {user}\n"
            f"  {cli} containers create web --template debian-12 --wait\n"
            f"  {cli} containers list   (--json for scripts; {cli} --help for the rest)"
        )


def _password() -> str:
    return secrets.token_urlsafe(12)


def _pid(sim: Any) -> dict[str, int]:
    return {"pvesim": sim.proc.pid} if sim.proc else {}
