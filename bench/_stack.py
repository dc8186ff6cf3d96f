"""The whole portal on loopback, for the benches that time what a user waits for
(bench.launchpad, bench.pool): a private Redis, the simulator with guest emulation (a CT
that runs has a real sshd on its 127.15.T.x address), the gateway's real nginx and dnsmasq
(LocalGateway; the simulator's DHCP reservations are dnsmasq's dhcp-hosts), a Celery
worker for the jobs and applies, and gunicorn serving the REST API."""

from __future__ import annotations

import os
import random
import shutil
import socket
import sys
import tempfile
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._env import add_nodes, run_dir, setup_django

DOMAIN = "apps.bench.test"
GUNICORN_CONF = Path(__file__).resolve().parent.parent / "deploy" / "gunicorn.conf.py"
# The CTs' /24: 127.15.T.0/24 with T in 3-19, which neither the demo (0-2, 255) nor the
# tests (20-99 LaunchPad, 100-250 pvesim) use.
THIRDS = range(3, 20)


@dataclass
class Stack:
    url: str  # gunicorn
    token: str  # the owner's API token (write scope)
    sim: Any
    gateway: Any
    site: Any
    env: dict[str, str]  # for more portal processes (a pool worker)


def missing_binaries(*extra: str) -> list[str]:
    """What the stack needs and this machine lacks (sshd, ssh, nginx, dnsmasq and `extra`)."""
    from portal.procs import find_binary

    return [b for b in ("/usr/sbin/sshd", "ssh", "nginx", "dnsmasq", *extra) if not find_binary(b)]


def private_dirs(prefix: str, cleanup: ExitStack) -> tuple[Path, Path]:
    """The run's directory and the CTs' (reachable by their user, nobody: mode 0711), both
    removed when `cleanup` closes."""
    rd = run_dir(prefix)
    guests = Path(tempfile.mkdtemp(prefix=f"bench-{prefix}-guests-"))
    guests.chmod(0o711)
    cleanup.callback(shutil.rmtree, rd, ignore_errors=True)
    cleanup.callback(shutil.rmtree, guests, ignore_errors=True)
    return rd, guests


def free_third() -> int:
    """A 127.15.T.0/24 where no sshd listens (the demo or another run might)."""

    def open_(ip: str) -> bool:
        with socket.socket() as s:
            s.settimeout(0.3)
            return s.connect_ex((ip, 22)) == 0

    for third in random.sample(list(THIRDS), len(THIRDS)):
        if not any(open_(f"127.15.{third}.{h}") for h in (10, 11, 200)):
            return third
    raise RuntimeError("no free 127.15.T.0/24 for the bench's containers")


def make_site(sim: Any, secret: str, third: int, gateway: Any) -> Any:
    from containers.models import Template
    from networking.models import Site

    site = Site.objects.create(
        name="Bench",
        slug="bench",
        domain=DOMAIN,
        internal_domain="cluster.bench.test",
        subnet="127.15.0.0/16",
        gateway_ip="127.15.0.1",
        reserved_ranges=f"127.15.0.0-127.15.{third}.9",
        dhcp_range_start=f"127.15.{third}.200",
        dhcp_range_end=f"127.15.{third}.250",
        public_port=gateway.ports["https"],
    )
    add_nodes(site, sim, secret)
    Template.objects.create(
        site=site,
        name="debian-12",
        display_name="Debian 12",
        volid="local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
        os_type="debian",
        default_memory_mib=256,
        default_disk_gib=2,
    )
    return site


def gunicorn(rd: Path, env: dict[str, str]) -> tuple[Any, str]:
    from portal.procs import Managed, free_port, port_open, wait_until

    port = free_port()
    web = Managed(
        [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), "portal.wsgi"],
        log_path=rd / "gunicorn.log",
        env={
            **os.environ,
            **env,
            "CACHE_URL": env["CELERY_BROKER_URL"].rsplit("/", 1)[0] + "/1",
            "WEB_BIND": f"127.0.0.1:{port}",
            "WEB_CONCURRENCY": "2",
            "WEB_THREADS": "4",
            "WEB_GRACEFUL_TIMEOUT": "2",
            "WEB_ACCESS_LOG": "",
        },
    ).start()
    wait_until(lambda: port_open("127.0.0.1", port), timeout=30, what="gunicorn")
    return web, f"http://127.0.0.1:{port}"


def start_stack(
    rd: Path, guests: Path, stack: ExitStack, *, task_seconds: float, concurrency: int = 4
) -> Stack:
    """Start everything; `stack` stops it all again (by PID) when it closes."""
    from portal.procs import CeleryWorker, RedisServer
    from pvesim.testing import SimulatorProcess

    redis = RedisServer(rd / "redis").start()
    stack.callback(redis.stop)
    env = setup_django(
        rd,
        CELERY_BROKER_URL=redis.url,
        ALLOWED_HOSTS="127.0.0.1",
        DEPLOY_KEY_DIR=str(rd / "deploy-key"),
        DEPLOY_SOURCE_DIR=str(rd / "deploy-sources"),
        GATEWAY_JOB_WAIT="true",
    )
    from networking.gateway import LocalGateway  # needs Django set up

    rnd = random.Random()
    gateway = LocalGateway(
        rd / "gateway",
        domains=[DOMAIN],
        stream_bind=f"127.{rnd.randint(100, 250)}.{rnd.randint(1, 250)}.1",
    )
    env = {**env, **gateway.env}
    stack.callback(gateway.stop)
    gateway.start()
    third, secret = free_third(), str(uuid.uuid4())
    sim = SimulatorProcess(
        rd / "pvesim",
        nodes=("pve1", "pve2"),
        tokens={"portal@pve!portal": secret},
        task_seconds=task_seconds,
        dhcp_hosts=gateway.paths().root / "dnsmasq" / "dhcp-hosts",
        guest_emulation=True,
        bridges=[f"vmbr0=127.15.{third}.200-127.15.{third}.250/16,127.15.0.1"],
        guest_dir=guests,
    )
    stack.callback(sim.stop)
    sim.start()
    site = make_site(sim, secret, third, gateway)
    # As deployed: the jobs' workers, and the gateway's own (its applies never wait for a
    # free job thread; a job may wait for an apply).
    for name, queues, threads in (
        ("worker", "proxmox", concurrency),
        ("gateway", "gateway.bench", 1),
    ):
        worker = CeleryWorker(
            log_path=rd / f"{name}.log", env=env, queues=queues, concurrency=threads, name=name
        )
        stack.callback(worker.stop)
        worker.start()
    web, url = gunicorn(rd, env)
    stack.callback(web.stop)
    return Stack(url=url, token=api_token(), sim=sim, gateway=gateway, site=site, env=env)


def api_token(username: str = "acme") -> str:
    from django.contrib.auth.models import User

    from auth.tokens import token_create

    owner = User.objects.create(username=username)
    _, token = token_create(user=owner, name="bench", scope="write", expires_in_days=7)
    return str(token)
