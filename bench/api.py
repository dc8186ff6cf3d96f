"""List and detail latency through a real server process, at 100 and 10,000 containers.

gunicorn serves the portal from a database holding N containers of one user (each
with its route and SSH port, its latest metrics sample, and an open alert for one in a
hundred: what the list and the dashboard now join and prefetch); the bench asks for the API's container list (a page of
50), one container's detail and the dashboard page, many times each, and prints the
median and 95th percentile, and the queries each request makes (counted in-process
with Django's test client on the same database).

    python -m bench api        # PostgreSQL when DATABASE_URL is set, else SQLite
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from typing import Any

from bench._env import run_dir, setup_django

SIZES = (100, 10_000)
REQUESTS = int(os.environ.get("BENCH_API_REQUESTS", "200"))

# (path, headers, cookies)
Target = tuple[str, dict[str, str], dict[str, str]]


def seed(count: int) -> tuple[Any, int]:
    from django.contrib.auth.models import User

    from containers.models import Container, ContainerStatus, Template
    from networking.allocation import mac_for
    from networking.models import Node, PortMapping, Route, Site

    PortMapping.objects.all().delete()
    Route.objects.all().delete()
    Container.objects.all().delete()
    site = Site.objects.filter(slug="bench").first() or Site.objects.create(
        name="Bench", slug="bench", domain="apps.bench.test", internal_domain="cluster.bench.test"
    )
    nodes = list(site.nodes.order_by("slot"))
    if not nodes:
        nodes = [
            Node.objects.create(
                site=site,
                name=n,
                slot=s,
                api_url="https://127.0.0.1:9",
                token_id="p@pve!p",
                token_secret="x",
            )
            for n, s in (("pve2", 0), ("pve1", 1))
        ]
    template = Template.objects.get_or_create(
        site=site,
        name="debian-12",
        defaults={
            "display_name": "Debian 12",
            "volid": "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
        },
    )[0]
    owner = User.objects.get_or_create(username="bench")[0]
    rows = []
    for i in range(count):
        vmid = 100 + i
        ip = f"10.15.{1 + i // 250}.{i % 250 + 1}"
        rows.append(
            Container(
                site=site,
                node=nodes[vmid % 2],
                vmid=vmid,
                hostname=f"c{i:05d}",
                owner=owner,
                template=template,
                cores=1,
                memory_mib=512,
                swap_mib=512,
                disk_gib=4,
                ip=ip,
                mac=mac_for(site.pk, ip),
                status=ContainerStatus.RUNNING,
            )
        )
    created = Container.objects.bulk_create(rows, batch_size=1000)
    Route.objects.bulk_create(
        [
            Route(site=site, container=c, name="http", subdomain=c.hostname, backend_port=80)
            for c in created
        ],
        batch_size=1000,
    )
    PortMapping.objects.bulk_create(
        [
            PortMapping(
                site=site, container=c, name="ssh", external_port=10000 + n, container_port=22
            )
            for n, c in enumerate(created)
        ],
        batch_size=1000,
    )
    _seed_metrics(created)
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:  # what autovacuum would do after such a load
            cursor.execute("ANALYZE")
    return owner, created[len(created) // 2].pk


def _seed_metrics(created: list[Any]) -> None:
    """Every container's latest sample, and an open memory alert on one in a hundred."""
    from django.utils import timezone

    from containers.metrics.models import AlertKind, ContainerAlert, ContainerSample

    now = timezone.now()
    ContainerSample.objects.bulk_create(
        [
            ContainerSample(
                container=c,
                sampled_at=now,
                pve_status="running",
                cpu=(n % 100) / 100,
                cpus=1,
                mem=(n % 512) << 20,
                maxmem=512 << 20,
                disk=1 << 30,
                maxdisk=4 << 30,
                uptime=3600,
                netin_rate=1000.0,
                netout_rate=500.0,
                diskread_rate=0.0,
                diskwrite_rate=0.0,
            )
            for n, c in enumerate(created)
        ],
        batch_size=1000,
    )
    ContainerAlert.objects.bulk_create(
        [
            ContainerAlert(
                container=c,
                kind=AlertKind.MEMORY,
                since=now,
                raised_at=now,
                value=0.97,
                message="memory at 97% of its limit",
            )
            for c in created[::100]
        ],
        batch_size=1000,
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _start_server(rd: Any, env: dict[str, str], port: int) -> Any:
    from portal.procs import Managed

    return Managed(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "portal.wsgi",
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            "2",
            "--log-level",
            "warning",
        ],
        log_path=rd / "gunicorn.log",
        env={**os.environ, **env},
    ).start()


def _targets(owner: Any, size: int, detail_pk: int) -> dict[str, Target]:
    """The three requests, as (path, headers, cookies): a token for the API, a session
    for the dashboard."""
    from django.conf import settings
    from django.test import Client

    from auth.tokens import token_create

    _, token = token_create(user=owner, name=f"bench-{size}", scope="read", expires_in_days=7)
    browser = Client()
    browser.force_login(owner)
    session = browser.cookies[settings.SESSION_COOKIE_NAME].value
    return {
        "api list (50)": (
            "/api/v1/containers/?page_size=50",
            {"Authorization": f"Bearer {token}"},
            {},
        ),
        "api detail": (
            f"/api/v1/containers/{detail_pk}/",
            {"Authorization": f"Bearer {token}"},
            {},
        ),
        "dashboard": ("/", {}, {settings.SESSION_COOKIE_NAME: session}),
    }


def _measure(http: Any, port: int, target: Target) -> tuple[float, float, int]:
    """(median ms, p95 ms, queries) of one request: queries counted in-process, times
    through the server."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    path, headers, cookies = target
    with CaptureQueriesContext(connection) as queries:
        probe = Client(headers=headers)
        for k, v in cookies.items():
            probe.cookies[k] = v
        assert probe.get(path).status_code == 200, path
    url = f"http://127.0.0.1:{port}{path}"
    for _ in range(10):  # warm up both workers
        http.get(url, headers=headers, cookies=cookies)
    times = []
    for _ in range(REQUESTS):
        started = time.perf_counter()
        response = http.get(url, headers=headers, cookies=cookies)
        times.append(1000 * (time.perf_counter() - started))
        assert response.status_code == 200, (url, response.status_code)
    return statistics.median(times), percentile(times, 0.95), len(queries)


def _report(results: dict[int, dict[str, tuple[float, float, int]]]) -> None:
    print(f"{'request':<16} {'containers':>10} {'median ms':>10} {'p95 ms':>8} {'queries':>8}")
    for size in SIZES:
        for name, (median, p95, count) in results[size].items():
            print(f"{name:<16} {size:>10} {median:>10.1f} {p95:>8.1f} {count:>8}")
    small, large = results[SIZES[0]], results[SIZES[-1]]
    for name in small:
        growth = large[name][1] / small[name][1]
        same = "identical" if large[name][2] == small[name][2] else "DIFFERENT"
        print(f"{name:<16} p95 growth {growth:.2f}x (target <= 1.5), queries {same}")
    print(f"api list p95 at {SIZES[-1]}: {large['api list (50)'][1]:.1f} ms (target < 100)")


def main() -> None:
    import requests

    from portal.procs import free_port, port_open, wait_until

    rd = run_dir("api")
    env = setup_django(rd, ALLOWED_HOSTS="127.0.0.1,localhost,testserver")
    port = free_port()
    server = _start_server(rd, env, port)
    try:
        wait_until(lambda: port_open("127.0.0.1", port), timeout=30, what="gunicorn")
        results: dict[int, dict[str, tuple[float, float, int]]] = {}
        for size in SIZES:
            owner, detail_pk = seed(size)
            targets = _targets(owner, size, detail_pk)
            http = requests.Session()
            results[size] = {}
            for name, target in targets.items():
                results[size][name] = _measure(http, port, target)
        _report(results)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
