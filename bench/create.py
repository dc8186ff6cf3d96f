"""The create POST at 100 and at 10,000 containers, side by side (issue #18, item 4).

Each stand is one source tree serving the portal: gunicorn (2 workers), Redis as the
broker (no worker: the jobs stay queued, only the request is timed) and a database with
two sites, one of 100 containers and one of 10,000, each container with its route and SSH
port; VMIDs, addresses and ports from the bottom of their ranges as the portal hands them
out, one container in a hundred deleted (its row stays, as history), so the lowest free
VMID, address and port are holes to fill first, then the ends of the ranges. Each site has
its own simulator holding a guest for each live container, as a real cluster would, so
the listing of the cluster's VMIDs is as large as the site.

With BENCH_BEFORE=<git revision>, a second stand serves that revision's code (this bench
copied into it) beside this tree's. The POSTs go to every stand and site in turn,
REQUESTS times each after a warm-up, so all share whatever else the machine does: the
ratios are the cost of the size and of the change. Printed: median, p95 and max of each,
the queries and time of one create service call in-process, and the time a create waits
for the cluster's listing when its process has none.

    python -m bench create                          # PostgreSQL if DATABASE_URL is set
    BENCH_BEFORE=10bca66 python -m bench create     # that revision beside this tree
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._env import run_dir, setup_django

SIZES = (100, 10_000)
REQUESTS = int(os.environ.get("BENCH_CREATE_REQUESTS", "200"))
WARM_UP = 10
FIRST_VMID = 100
DELETED_EVERY = 100  # one container in a hundred was deleted: holes to fill
TOKEN_ID = "portal@pve!portal"
ROOT = Path(__file__).resolve().parents[1]
SAID = "BENCH "  # a stand's lines to the bench, on its standard output


@dataclass
class Bed:
    """One site of a stand: its size, simulator, template and results."""

    size: int
    sim: Any
    site: Any = None
    template: Any = None


@dataclass
class Target:
    """One site of one stand, as the bench times it."""

    stand: str
    size: int
    port: int
    slug: str
    token: str
    times: list[float] = field(default_factory=list)
    queries: int = 0
    service_ms: float = 0.0
    listing_ms: float = 0.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# -- a stand: one tree's portal, seeded ---------------------------------------------------
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


def in_process(bed: Bed, owner: Any) -> dict[str, float]:
    """The cold listing of the cluster's guests, then the queries and milliseconds of one
    create service call (median of 20)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from containers import services

    services.forget_proxmox_vmids(bed.site)
    started = time.perf_counter()
    services.proxmox_used_vmids(bed.site)
    listing_ms = 1000 * (time.perf_counter() - started)
    times = []
    for n in range(20):
        started = time.perf_counter()
        with CaptureQueriesContext(connection) as queries:
            services.container_create(owner=owner, hostname=f"p{n}", template=bed.template)
        times.append(1000 * (time.perf_counter() - started))
    return {
        "queries": len(queries),
        "service_ms": statistics.median(times),
        "listing_ms": listing_ms,
    }


def say(what: dict[str, Any]) -> None:
    print(SAID + json.dumps(what), flush=True)


def serve(stand: str) -> None:
    """A stand: set up, say where it serves, wait for the word to measure in-process, say
    the figures, and stop when the bench closes its input."""
    from portal.procs import RedisServer, free_port, port_open, wait_until
    from pvesim.testing import SimulatorProcess

    rd = run_dir(f"create-{stand}")
    if os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] += f"_{stand}"
    secret = str(uuid.uuid4())
    redis = RedisServer(rd / "redis").start()
    beds = [
        Bed(
            size,
            SimulatorProcess(rd / f"sim{size}", nodes=("pve1", "pve2"), tokens={TOKEN_ID: secret}),
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
        say({"port": port, "token": token, "sites": {b.size: b.site.slug for b in beds}})
        if sys.stdin.readline().strip() == "in-process":  # else the bench stopped
            say({"in_process": {b.size: in_process(b, owner) for b in beds}})
            sys.stdin.read()
    finally:
        if server is not None:
            server.stop()
        for bed in beds:
            bed.sim.stop()
        redis.stop()


# -- the bench: stands side by side ---------------------------------------------------------
class Stand:
    """A stand in a process of its own, in its source tree."""

    def __init__(self, name: str, tree: Path) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.create", "serve", name],
            cwd=tree,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def hear(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(SAID):
                return dict(json.loads(line[len(SAID) :]))
        raise RuntimeError(f"stand {self.name} stopped (exit status {self.proc.wait()})")

    def tell(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=120)


def tree_of(revision: str) -> Path:
    """The revision's files, with this bench in them."""
    tree = run_dir("create-tree")
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", revision], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    shutil.copytree(ROOT / "bench", tree / "bench", dirs_exist_ok=True)
    return tree


def over_http(targets: list[Target]) -> None:
    """POST to each target in turn; the first WARM_UP rounds are not counted."""
    import requests

    http = requests.Session()
    for n in range(-WARM_UP, REQUESTS):
        for t in targets:
            body = {"hostname": f"h{n + WARM_UP}", "template": "debian-12", "site": t.slug}
            started = time.perf_counter()
            answer = http.post(
                f"http://127.0.0.1:{t.port}/api/v1/containers/",
                json=body,
                headers={"Authorization": f"Bearer {t.token}"},
            )
            took = 1000 * (time.perf_counter() - started)
            assert answer.status_code == 202, (t.stand, answer.status_code, answer.text[:300])
            if n >= 0:
                t.times.append(took)


def report(targets: list[Target]) -> None:
    print(
        f"{'stand':<8} {'containers':>10} {'median ms':>10} {'p95 ms':>8} {'max ms':>8} "
        f"{'queries':>8} {'service ms':>11} {'cold listing ms':>16}"
    )
    for t in targets:
        print(
            f"{t.stand:<8} {t.size:>10} {statistics.median(t.times):>10.1f} "
            f"{percentile(t.times, 0.95):>8.1f} {max(t.times):>8.1f} {t.queries:>8} "
            f"{t.service_ms:>11.1f} {t.listing_ms:>16.0f}"
        )
    p95 = {(t.stand, t.size): percentile(t.times, 0.95) for t in targets}
    small, large = SIZES[0], SIZES[-1]
    for stand in dict.fromkeys(t.stand for t in targets):
        growth = p95[stand, large] / p95[stand, small]
        print(f"{stand}: create POST p95 {large} / {small}: {growth:.2f}x (target <= 1.2)")
    if ("before", large) in p95:
        for size in SIZES:
            change = p95["after", size] / p95["before", size]
            print(f"p95 at {size}: after / before {change:.2f}x")


def main() -> None:
    before = os.environ.get("BENCH_BEFORE", "")
    trees = [("before", tree_of(before))] if before else []
    trees.append(("after" if before else "now", ROOT))
    stands = [Stand(name, tree) for name, tree in trees]
    try:
        targets = []
        for stand in stands:
            said = stand.hear()
            targets += [
                Target(stand.name, int(size), said["port"], slug, said["token"])
                for size, slug in said["sites"].items()
            ]
        over_http(targets)
        for stand in stands:
            stand.tell("in-process")
            figures = stand.hear()["in_process"]
            for t in targets:
                if t.stand == stand.name:
                    got = figures[str(t.size)]
                    t.queries, t.service_ms, t.listing_ms = (
                        int(got["queries"]),
                        got["service_ms"],
                        got["listing_ms"],
                    )
        report(targets)
    finally:
        for stand in stands:
            stand.stop()


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(sys.argv[2])
    else:
        main()
