"""The gateway: apply time by size, routing overhead of 10,000 routes, applies per burst.

Everything runs on loopback in a private directory: a Redis, the real nginx and dnsmasq
(LocalGateway), a gateway Celery worker and, for the routing run, an nginx standing in
for the containers.

    python -m bench gateway        # or: make bench

1. Render, validate and apply for 100, 1,000 and 10,000 containers, each with an HTTP
   route and an SSH mapping: every phase, and the whole apply against `nginx -t` alone
   on the same files. Targets: 10,000 in at most 1 s; 10,000 / 1,000 at most 12.
2. Requests per second through nginx with 10,000 routes against the same with one route,
   same backend, measured side by side (interleaved runs). Target: ratio at least 0.95.
3. A burst of 100 creates: how many applies it caused. Target: at most 3.
"""

from __future__ import annotations

import ipaddress
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

SIZES = [int(n) for n in os.environ.get("BENCH_GATEWAY_SIZES", "100,1000,10000").split(",")]
WRK_SECONDS = int(os.environ.get("BENCH_WRK_SECONDS", "3"))
WRK_ROUNDS = int(os.environ.get("BENCH_WRK_ROUNDS", "5"))
BURST = 100


def main() -> None:
    from portal.procs import CeleryWorker, RedisServer

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

        gw = LocalGateway(
            rd / "gateway",
            domains=["apps.bench.test"],
            stream_bind=f"127.{rnd.randint(100, 250)}.{rnd.randint(1, 250)}.1",
            GATEWAY_COALESCE_SECONDS=0.2,
            GATEWAY_COALESCE_MAX_SECONDS=2.0,
        )
        env = {**env, **gw.env}
        gw.start()
        started.append(gw)
        site, owner = _site(net)
        _scale(site, owner, gw, net)
        _routing(site, gw, rd, net)
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


def _grow(site: Any, owner: Any, net: str, start: int, stop: int) -> None:
    """Containers start..stop-1, each with its default route and SSH mapping (bulk inserts)."""
    from containers.models import Container
    from networking.models import PortMapping, Route

    template, node = site.templates.get(), site.nodes.first()
    first = int(ipaddress.IPv4Address(f"{net}.1.0"))
    rows = []
    for i in range(start, stop):
        ip = ipaddress.IPv4Address(first + i)
        rows.append(
            Container(
                site=site,
                node=node,
                vmid=1000 + i,
                hostname=f"ct{i}",
                owner=owner,
                template=template,
                cores=1,
                memory_mib=512,
                swap_mib=0,
                disk_gib=4,
                ip=str(ip),
                mac="02:01:" + ":".join(f"{b:02X}" for b in ip.packed),
            )
        )
    Container.objects.bulk_create(rows, batch_size=2000)
    ids = dict(
        Container.objects.filter(site=site, vmid__gte=1000 + start).values_list("hostname", "id")
    )
    Route.objects.bulk_create(
        [
            # Public: wrk measures routing, not the login check.
            Route(
                site=site,
                container_id=ids[f"ct{i}"],
                subdomain=f"ct{i}",
                backend_port=8080,
                access="public",
            )
            for i in range(start, stop)
        ],
        batch_size=2000,
    )
    PortMapping.objects.bulk_create(
        [
            PortMapping(
                site=site,
                container_id=ids[f"ct{i}"],
                name="ssh",
                protocol="tcp",
                external_port=site.ssh_port_min + i,
                container_port=22,
            )
            for i in range(start, stop)
        ],
        batch_size=2000,
    )


def _nginx_t(paths: Any) -> float:
    from networking.gateway import nginx_test

    runs = []
    for _ in range(3):
        t = time.monotonic()
        ok, out = nginx_test(paths.nginx_conf, paths.nginx_prefix)
        runs.append(time.monotonic() - t)
        assert ok, out
    return statistics.median(runs)


def _scale(site: Any, owner: Any, gw: Any, net: str) -> None:
    from networking.gateway import apply_site
    from networking.services import request_apply

    print("Apply by size (each container: an HTTP route and an SSH mapping); seconds")
    cols = ["load", "render", "bind_check", "write", "nginx -t", "dnsmasq --test", "reload"]
    print(
        f"{'containers':>10} "
        + " ".join(f"{c:>14}" for c in cols)
        + f" {'apply':>8} {'nginx -t alone':>15} {'apply/nginx-t':>14}"
    )
    totals: dict[int, float] = {}
    have = 0
    for n in sorted(SIZES):
        _grow(site, owner, net, have, n)
        have = n
        request_apply(site)
        rev = apply_site(site, coalesce=False).revision
        if rev is None or rev.status != "applied":
            raise RuntimeError(f"the apply of {n} containers failed: {rev and rev.error}")
        alone = _nginx_t(gw.paths())
        total = rev.duration_ms / 1000
        totals[n] = total
        print(
            f"{n:>10} "
            + " ".join(f"{rev.timings.get(c, 0.0):>14.3f}" for c in cols)
            + f" {total:>8.3f} {alone:>15.3f} {total / alone:>14.2f}"
        )
    if 1000 in totals and 10000 in totals:
        print(f"growth 10,000 / 1,000: {totals[10000] / totals[1000]:.2f}   (target <= 12)")
        print(f"10,000 containers applied in {totals[10000]:.3f} s   (target <= 1 s)")
    if 10000 in totals:
        print(
            f"for comparison, nginx -t with one stream server block per mapping at 10,000: "
            f"{_per_server_block_layout(gw):.3f} s (why stream.conf has one server)"
        )


def _per_server_block_layout(gw: Any) -> float:
    from networking.gateway import nginx_test

    live = gw.paths().live_release()
    alt = live.parent.parent / "alt-layout"
    shutil.rmtree(alt, ignore_errors=True)
    shutil.copytree(live, alt)
    stream = (alt / "nginx" / "stream.conf").read_text()
    backends = dict(re.findall(r"^\s+TCP:(\d+) (\S+);", stream, re.M))
    bind = gw.settings["GATEWAY_STREAM_BIND"]
    (alt / "nginx" / "stream.conf").write_text(
        "".join(
            f"server {{ listen {bind}:{port}; proxy_pass {backend}; }}\n"
            for port, backend in backends.items()
        )
    )
    t = time.monotonic()
    ok, out = nginx_test(alt / "nginx" / "nginx.conf", alt / "nginx")
    took = time.monotonic() - t
    shutil.rmtree(alt, ignore_errors=True)
    assert ok, out
    return took


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
