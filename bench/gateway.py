"""The gateway: apply time by size, routing overhead of 10,000 routes, applies per burst.

Everything runs on loopback in a private directory: a Redis, the real nginx and dnsmasq
(LocalGateway), a gateway Celery worker and, for the routing run, an nginx standing in
for the containers.

    python -m bench gateway        # or: make bench
    BENCH_GATEWAY_BASELINE=main python -m bench gateway    # part 1 before and after

1. Render, validate and apply for 100, 1,000 and 10,000 containers, each with an HTTP
   route and an SSH mapping: every phase, and the whole apply against `nginx -t` alone
   on the same files (bench/_gateway_apply.py). Targets at 10,000: the apply a create
   causes in at most 2x `nginx -t` alone; the growth from 1,000 in at most 1 s.
2. Requests per second through nginx with 10,000 routes against the same with one route,
   same backend, measured side by side (interleaved runs). Target: ratio at least 0.95.
3. A burst of 100 creates: how many applies it caused. Target: at most 3.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import statistics
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from bench._env import run_dir, setup_django
from bench._gateway_apply import compare_with, per_server_block_layout, scale

# Which parts run (scale, routing, burst); BENCH_GATEWAY_JSON: where part 1 writes its figures.
PARTS = os.environ.get("BENCH_GATEWAY_PARTS", "scale,routing,burst").split(",")
WRK_SECONDS = int(os.environ.get("BENCH_WRK_SECONDS", "3"))
WRK_ROUNDS = int(os.environ.get("BENCH_WRK_ROUNDS", "5"))
BURST = 100


def main() -> None:
    from portal.procs import CeleryWorker, RedisServer

    baseline = os.environ.get("BENCH_GATEWAY_BASELINE")
    if baseline:
        compare_with(baseline)
        return

    if not (shutil.which("nginx") or os.path.exists("/usr/sbin/nginx")) or not (
        shutil.which("dnsmasq") or os.path.exists("/usr/sbin/dnsmasq")
    ):
        print(
            "nginx and dnsmasq are needed (apt-get install nginx libnginx-mod-stream dnsmasq-base)"
        )
        return
    rd = run_dir("gateway")
    rd.chmod(0o755)  # nginx and dnsmasq workers run as nobody
    rnd = random.Random()
    net = f"127.{rnd.randint(100, 250)}"
    redis = RedisServer(rd / "redis").start()
    started: list[Any] = []
    try:
        env = setup_django(rd, CELERY_BROKER_URL=redis.url)
        from networking.gateway import LocalGateway
        from portal.gateway_defaults import GATEWAY_DEFAULTS

        # A gateway host's stream shards, not the demo's (none: a tree before the shards,
        # measured by this code as a baseline).
        shards = getattr(GATEWAY_DEFAULTS, "stream_shards", None)
        gw = LocalGateway(
            rd / "gateway",
            domains=["apps.bench.test"],
            **({"stream_shards": shards} if shards else {}),
            stream_bind=f"127.{rnd.randint(100, 250)}.{rnd.randint(1, 250)}.1",
            GATEWAY_COALESCE_SECONDS=0.2,
            GATEWAY_COALESCE_MAX_SECONDS=2.0,
        )
        env = {**env, **gw.env}
        gw.start()
        started.append(gw)
        site, owner = _site(net)
        if "scale" in PARTS:
            _scale(site, owner, gw, net)
        if "routing" in PARTS:
            _routing(site, gw, rd, net)
        if "burst" not in PARTS:
            return
        worker = CeleryWorker(
            log_path=rd / "gateway-worker.log",
            env=env,
            queues="gateway.bench",
            concurrency=2,
            name="bench-gateway",
        ).start()
        started.append(worker)
        _burst(site, net)
    finally:
        for thing in reversed(started):
            thing.stop()
        redis.stop()
        shutil.rmtree(rd, ignore_errors=True)


def _site(net: str) -> tuple[Any, Any]:
    from django.contrib.auth.models import User

    from containers.models import Template
    from networking.models import Node, Site

    site = Site.objects.create(
        name="Bench",
        slug="bench",
        domain="apps.bench.test",
        internal_domain="cluster.bench.test",
        subnet=f"{net}.0.0/16",
        gateway_ip=f"{net}.0.1",
        reserved_ranges=f"{net}.0.0-{net}.0.255",
        dhcp_range_start=f"{net}.255.0",
        dhcp_range_end=f"{net}.255.254",
    )
    for name, slot in (("pve2", 0), ("pve1", 1)):
        Node.objects.create(
            site=site,
            name=name,
            slot=slot,
            api_url="https://127.0.0.1:8006",
            token_id="portal@pve!portal",
            token_secret="x",
        )
    Template.objects.create(
        site=site,
        name="debian-12",
        display_name="Debian 12",
        volid="local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
        default_memory_mib=512,
        default_disk_gib=4,
    )
    return site, User.objects.create(username="bench")


def _scale(site: Any, owner: Any, gw: Any, net: str) -> None:
    results = scale(site, owner, gw, net)
    if os.environ.get("BENCH_GATEWAY_JSON"):
        Path(os.environ["BENCH_GATEWAY_JSON"]).write_text(json.dumps(results))
    growth = {int(n): r["growth"]["total"] for n, r in results.items()}
    if 1000 in growth and 10000 in growth:
        print(
            f"growth apply from 1,000 to 10,000 containers: {growth[10000]:.3f} s   (target <= 1 s)"
        )
    if "10000" in results and "routing" in PARTS:
        print(
            f"for comparison, nginx -t with one stream server block per mapping at 10,000: "
            f"{per_server_block_layout(gw):.3f} s (why a stream shard has one server)"
        )


def _start_backend(nginx: str, backend_dir: Path, probe_ip: str) -> None:
    """An nginx standing in for the containers: ct0's address, port 8080, answers 'ok'."""
    (backend_dir / "logs").mkdir(parents=True)
    (backend_dir / "nginx.conf").write_text(
        f"worker_processes 1; pid {backend_dir}/nginx.pid; error_log {backend_dir}/logs/error.log;\n"
        "events { worker_connections 1024; }\n"
        f"http {{ access_log off; client_body_temp_path {backend_dir}/tmp; proxy_temp_path {backend_dir}/tmp;"
        f" fastcgi_temp_path {backend_dir}/tmp; uwsgi_temp_path {backend_dir}/tmp; scgi_temp_path "
        f"{backend_dir}/tmp; server {{ listen {probe_ip}:8080; location / {{ return 200 'ok'; }} }} }}\n"
    )
    subprocess.run(
        [nginx, "-c", str(backend_dir / "nginx.conf"), "-p", f"{backend_dir}/"], check=True
    )


def _start_one_route_gateway(site: Any, nginx: str, small_root: Path) -> dict[str, int]:
    """The same renderer, options and backend as the gateway, with ct0's route only, in
    its own directory; returns its ports."""
    from networking.gateway import write_tree
    from networking.render import GatewayOptions, load_state, render
    from portal.procs import free_port

    ports = {k: free_port() for k in ("http", "https", "status")}
    base = GatewayOptions.from_settings(small_root)
    opts = GatewayOptions(
        **{
            **base.__dict__,
            "root": small_root,
            "http_listen": (f"127.0.0.1:{ports['http']}",),
            "https_listen": (f"127.0.0.1:{ports['https']}",),
            "status_listen": f"127.0.0.1:{ports['status']}",
            "stream_bind": "127.0.0.2",
        }
    )
    state = load_state(site)
    one = [r for r in state.routes if r.subdomain == "ct0"]
    rendered = render(
        type(state)(
            **{
                **state.__dict__,
                "routes": tuple(one),
                "mappings": state.mappings[:1],
                "hosts": state.hosts[:1],
            }
        ),
        opts,
    )
    write_tree(rendered.files, small_root)
    for d in ("run/logs", "run/tmp"):
        (small_root / d).mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [nginx, "-c", str(small_root / "nginx" / "nginx.conf"), "-p", f"{small_root}/nginx/"],
        check=True,
    )
    return ports


def _wait_https(port: int, host: str) -> None:
    from portal.procs import wait_until

    wait_until(
        lambda: (
            subprocess.run(
                [
                    "curl",
                    "-sk",
                    "-o",
                    "/dev/null",
                    "-H",
                    f"Host: {host}",
                    f"https://127.0.0.1:{port}/",
                ],
                check=False,
            ).returncode
            == 0
        ),
        timeout=10,
        what="the one-route gateway",
    )


def _compare(wrk: str, many_url: str, one_url: str, host: str) -> None:
    results: dict[str, list[float]] = {"10000": [], "1": []}
    for _ in range(WRK_ROUNDS):
        for label, url in (("10000", many_url), ("1", one_url)):
            results[label].append(_wrk(wrk, url, host))
    many, single = statistics.median(results["10000"]), statistics.median(results["1"])
    print("\nRouting overhead (wrk -t2 -c16, HTTPS, same nginx backend, interleaved runs)")
    print(
        f"requests/s with 10,000 routes: {many:,.0f}  (runs {', '.join(f'{x:,.0f}' for x in results['10000'])})"
    )
    print(
        f"requests/s with 1 route:       {single:,.0f}  (runs {', '.join(f'{x:,.0f}' for x in results['1'])})"
    )
    print(f"ratio 10,000 / 1: {many / single:.3f}   (target >= 0.95)")


def _routing(site: Any, gw: Any, rd: Path, net: str) -> None:
    """wrk through the gateway with 10,000 routes and through an identical one with 1 route."""
    from networking.gateway import find_binary

    wrk = find_binary("wrk")
    if not wrk:
        print("wrk is not installed: routing overhead not measured (apt-get install wrk)")
        return
    probe_ip, host = f"{net}.1.0", "ct0.apps.bench.test"  # ct0's route: port 8080 on its address
    backend_dir = rd / "backend"
    nginx = find_binary("nginx")
    assert nginx
    _start_backend(nginx, backend_dir, probe_ip)
    small_root = rd / "small"
    ports = _start_one_route_gateway(site, nginx, small_root)
    try:
        _wait_https(ports["https"], host)
        _compare(
            wrk,
            f"https://127.0.0.1:{gw.ports['https']}/",
            f"https://127.0.0.1:{ports['https']}/",
            host,
        )
    finally:
        for pid_file in (backend_dir / "nginx.pid", small_root / "run" / "nginx.pid"):
            _stop(pid_file)


def _wrk(wrk: str, url: str, host: str) -> float:
    out = subprocess.run(
        [wrk, "-t2", "-c16", f"-d{WRK_SECONDS}s", "-H", f"Host: {host}", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m or "Non-2xx" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    return float(m[1])


def _stop(pid_file: Path) -> None:
    import signal

    from portal.procs import stop_pid

    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return
    stop_pid(pid, sig=signal.SIGQUIT)


def _burst(site: Any, net: str) -> None:
    """100 creates at once through container_create; the gateway worker does the applies."""
    from django.contrib.auth.models import User
    from django.db import connections

    import containers.services as container_services
    import containers.tasks
    from containers.models import Container
    from networking.models import ConfigRevision, GatewayState
    from networking.services import wait_for_apply

    Container.objects.filter(site=site).delete()
    # Only the gateway is measured: no Proxmox to ask, no jobs to run.
    containers.tasks.enqueue_job = lambda job_id: None
    container_services.proxmox_used_vmids = lambda site: frozenset()
    owners = [User.objects.create(username=f"burst{i}") for i in range(BURST)]
    before = ConfigRevision.objects.filter(site=site).count()
    template = site.templates.get()
    start = threading.Barrier(20)

    def create(first: int) -> None:
        try:
            start.wait()
            for i in range(first, BURST, 20):
                container_services.container_create(
                    owner=owners[i], hostname=f"burst{i}", template=template
                )
        finally:
            connections.close_all()

    began = time.monotonic()
    threads = [threading.Thread(target=create, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    created = time.monotonic() - began
    final = GatewayState.objects.get(site=site).requested
    wait_for_apply(site, final, timeout=60)
    published = time.monotonic() - began
    applies = ConfigRevision.objects.filter(site=site).count() - before
    print(
        f"\nBurst of {BURST} creates in {created:.2f} s: {applies} apply(s), all published "
        f"{published:.2f} s after the first   (target: at most 3 applies)"
    )


if __name__ == "__main__":
    main()
