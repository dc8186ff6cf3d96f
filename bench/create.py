"""The create POST at 100 and at 10,000 containers, side by side (issue #18, item 4).

One database holds two sites: one with 100 containers, one with 10,000, each container
with its route and SSH port, VMIDs, addresses and ports from the bottom of their ranges
as the portal hands them out; one in a hundred was deleted (its row stays, as history),
so the lowest free VMID, address and port are holes to fill first, then the ends of the
ranges. Each site has its own simulator holding a guest for each live container, as a
real cluster would, so the service's listing of the cluster's VMIDs is as large as the
site.

gunicorn (2 workers) serves the portal; Redis is the broker (no worker: the jobs stay
queued, only the request is timed). After a warm-up, `POST /api/v1/containers/` goes to
one site then the other, REQUESTS times each: the two sizes share whatever else the
machine does, so their ratio is the cost of the size. Printed: median, p95 and max per
size, the queries and time of one create service call counted in-process, and the time a
create waits for the cluster's listing when a process has none yet.

    python -m bench create        # PostgreSQL when DATABASE_URL is set, else SQLite
"""

from __future__ import annotations

import ipaddress
import os
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from bench._env import run_dir, setup_django

SIZES = (100, 10_000)
REQUESTS = int(os.environ.get("BENCH_CREATE_REQUESTS", "200"))
WARM_UP = 10
FIRST_VMID = 100
DELETED_EVERY = 100  # one container in a hundred was deleted: holes to fill
TOKEN_ID = "portal@pve!portal"


@dataclass
class Bed:
    """One site of the bench: its size, simulator, template and results."""

    size: int
    sim: Any
    site: Any = None
    template: Any = None
    times: list[float] = field(default_factory=list)
    queries: int = 0
    service_ms: float = 0.0
    listing_ms: float = 0.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def addresses(site: Any) -> Iterator[str]:
    """The site's addresses in the order the portal hands them out (lowest first, outside
    the reserved and DHCP ranges and the gateway's)."""
    network = site.network
    excluded = site.excluded_ranges()
    for n in range(int(network.network_address) + 1, int(network.broadcast_address)):
        if not any(lo <= n <= hi for lo, hi in excluded):
            yield str(ipaddress.IPv4Address(n))


def make_site(bed: Bed, secret: str) -> None:
    from containers.models import Template
    from networking.models import Node, Site

    site = Site.objects.create(
        name=f"Bench {bed.size}",
        slug=f"bench{bed.size}",
        domain=f"apps{bed.size}.bench.test",
        internal_domain=f"cluster{bed.size}.bench.test",
    )
    for name, slot in (("pve2", 0), ("pve1", 1)):
        Node.objects.create(
            site=site,
            name=name,
            slot=slot,
            api_url=bed.sim.url,
            token_id=TOKEN_ID,
            token_secret=secret,
            ca_bundle=str(bed.sim.ca_path),
        )
    bed.site = site
    bed.template = Template.objects.create(
        site=site,
        name="debian-12",
        display_name="Debian 12",
        volid="local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
        default_memory_mib=128,
        default_disk_gib=1,
    )


def seed(bed: Bed, owner: Any) -> None:
    """The site's containers, their routes and SSH ports, and their guests."""
    from containers.models import Container, ContainerStatus
    from networking.allocation import mac_for
    from networking.models import PortMapping, Route

    site = bed.site
    nodes = {n.slot: n for n in site.nodes.all()}
    rows = []
    for i, ip in zip(range(bed.size), addresses(site), strict=False):
        vmid = FIRST_VMID + i
        deleted = i % DELETED_EVERY == DELETED_EVERY // 2
        rows.append(
            Container(
                site=site,
                node=nodes[vmid % 2],
                vmid=vmid,
                hostname=f"c{i:05d}",
                owner=owner,
                template=bed.template,
                cores=1,
                memory_mib=128,
                swap_mib=0,
                disk_gib=1,
                ip=ip,
                mac=mac_for(site.pk, ip),
                status=ContainerStatus.DELETED if deleted else ContainerStatus.RUNNING,
            )
        )
    live = [
        c
        for c in Container.objects.bulk_create(rows, batch_size=1000)
        if c.status != ContainerStatus.DELETED
    ]
    Route.objects.bulk_create(
        [
            Route(site=site, container=c, name="", subdomain=c.hostname, backend_port=80)
            for c in live
        ],
        batch_size=1000,
    )
    PortMapping.objects.bulk_create(
        [
            PortMapping(
                site=site,
                container=c,
                name="ssh",
                external_port=site.ssh_port_min + c.vmid - FIRST_VMID,
                container_port=22,
            )
            for c in live
        ],
        batch_size=1000,
    )
    for start in range(0, len(live), 1000):
        bed.sim.admin.create_foreign_guests(
            {"node": nodes[c.vmid % 2].name, "vmid": c.vmid, "status": "running"}
            for c in live[start : start + 1000]
        )


def _analyze() -> None:
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:  # what autovacuum would do after such a load
            cursor.execute("VACUUM ANALYZE")


def _start_server(rd: Any, env: dict[str, str], port: int) -> Any:
    from portal.procs import Managed

    argv = [sys.executable, "-m", "gunicorn", "portal.wsgi", "-b", f"127.0.0.1:{port}"]
    return Managed(
        [*argv, "-w", "2", "--log-level", "warning"],
        log_path=rd / "gunicorn.log",
        env={**os.environ, **env},
    ).start()


def over_http(beds: list[Bed], port: int, token: str) -> None:
    """POST to each site in turn; the first WARM_UP rounds are not counted."""
    import requests

    http = requests.Session()
    url = f"http://127.0.0.1:{port}/api/v1/containers/"
    headers = {"Authorization": f"Bearer {token}"}
    for n in range(-WARM_UP, REQUESTS):
        for bed in beds:
            body = {"hostname": f"h{n + WARM_UP}", "template": "debian-12", "site": bed.site.slug}
            started = time.perf_counter()
            answer = http.post(url, json=body, headers=headers)
            took = 1000 * (time.perf_counter() - started)
            assert answer.status_code == 202, (answer.status_code, answer.text[:300])
            if n >= 0:
                bed.times.append(took)


def in_process(bed: Bed, owner: Any) -> None:
    """The cold listing of the cluster's guests, then the queries and milliseconds of one
    create service call (median of 20)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from containers import services

    services.forget_proxmox_vmids(bed.site)
    started = time.perf_counter()
    services.proxmox_used_vmids(bed.site)
    bed.listing_ms = 1000 * (time.perf_counter() - started)
    times = []
    for n in range(20):
        started = time.perf_counter()
        with CaptureQueriesContext(connection) as queries:
            services.container_create(owner=owner, hostname=f"p{n}", template=bed.template)
        times.append(1000 * (time.perf_counter() - started))
    bed.queries, bed.service_ms = len(queries), statistics.median(times)


def report(beds: list[Bed]) -> None:
    print(
        f"{'containers':>10} {'median ms':>10} {'p95 ms':>8} {'max ms':>8} "
        f"{'queries':>8} {'service ms':>11} {'cold listing ms':>16}"
    )
    for b in beds:
        print(
            f"{b.size:>10} {statistics.median(b.times):>10.1f} {percentile(b.times, 0.95):>8.1f} "
            f"{max(b.times):>8.1f} {b.queries:>8} {b.service_ms:>11.1f} {b.listing_ms:>16.0f}"
        )
    small, large = (percentile(b.times, 0.95) for b in beds)
    print(f"create POST p95 {beds[-1].size} / {beds[0].size}: {large / small:.2f}x (target <= 1.2)")


def main() -> None:
    from portal.procs import RedisServer, free_port, port_open, wait_until
    from pvesim.testing import SimulatorProcess

    rd = run_dir("create")
    secret = str(uuid.uuid4())
    redis = RedisServer(rd / "redis").start()
    beds = [
        Bed(
            size,
            SimulatorProcess(
                rd / f"pvesim{size}", nodes=("pve1", "pve2"), tokens={TOKEN_ID: secret}
            ),
        )
        for size in SIZES
    ]
    server = None
    try:
        for bed in beds:
            bed.sim.start()
        env = setup_django(
            rd,
            CELERY_BROKER_URL=redis.url,
            ALLOWED_HOSTS="127.0.0.1,localhost,testserver",
            API_THROTTLE_USER="1000000/minute",
            API_TOKEN_THROTTLE_RATE="1000000/minute",
        )
        from django.contrib.auth.models import User

        from auth.tokens import token_create

        owner = User.objects.create(username="bench")
        _, token = token_create(user=owner, name="bench", scope="write", expires_in_days=7)
        for bed in beds:
            make_site(bed, secret)
            seed(bed, owner)
        _analyze()
        port = free_port()
        server = _start_server(rd, env, port)
        wait_until(lambda: port_open("127.0.0.1", port), timeout=30, what="gunicorn")
        over_http(beds, port, token)
        for bed in beds:
            in_process(bed, owner)
        report(beds)
    finally:
        if server is not None:
            server.stop()
        for bed in beds:
            bed.sim.stop()
        redis.stop()


if __name__ == "__main__":
    main()
