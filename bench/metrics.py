"""The metrics poll and the chart API at 10,000 containers (issue #16).

A simulator holds 10,000 running CTs on two nodes; the database holds a container of
the portal's for each. The bench times:

- one poll (`metrics_poll_site`): the single `GET /cluster/resources?type=vm` (the
  simulator's answer and its transfer, over HTTPS), then the parse and the one bulk
  upsert of 10,000 samples, apart; the first poll inserts, the next ones update;
- the chart API (`GET /api/v1/containers/{id}/metrics/`) with a warm cache: the
  latency of the view in-process (Django's test client: no web server in between),
  for `hour` (60 points) and `day` (1440 points), p50 and p95;
- an alert storm: every container's CPU pinned at once, through the alert check
  (`evaluate_alerts`) as a poll calls it: first seen, raised (and told: the deliveries are
  counted, not sent), held, cleared; the time and the statements of each phase.

    python -m bench metrics   # PostgreSQL when DATABASE_URL is set, else SQLite
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from typing import Any

from bench._env import run_dir, setup_django

COUNT = int(os.environ.get("BENCH_METRICS_CONTAINERS", "10000"))
POLLS = int(os.environ.get("BENCH_METRICS_POLLS", "5"))
REQUESTS = int(os.environ.get("BENCH_METRICS_REQUESTS", "400"))
FIRST_VMID = 100
TOKEN = "portal@pve!portal"
SECRET = "5f0b3c1e-8d2a-4e6b-9c7d-0a1b2c3d4e5f"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def seed_simulator(sim: Any) -> float:
    started = time.perf_counter()
    for start in range(0, COUNT, 1000):
        sim.admin.create_foreign_guests(
            {"node": "pve1" if v % 2 else "pve2", "vmid": v, "status": "running"}
            for v in range(FIRST_VMID + start, FIRST_VMID + min(COUNT, start + 1000))
        )
    return time.perf_counter() - started


def seed_portal(sim: Any) -> Any:
    from django.db import connection

    from bench._env import seed_site
    from tests.factories import make_containers

    template, _ = seed_site(sim, SECRET)
    made = make_containers(template.site, COUNT, first_vmid=FIRST_VMID)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:  # what autovacuum would do after such a load
            cursor.execute("ANALYZE")
    return template.site, made


def bench_poll(site: Any) -> dict[str, list[float]]:
    from containers.metrics.poll import metrics_poll_site

    out: dict[str, list[float]] = {"api": [], "write": [], "total": []}
    first = metrics_poll_site(site=site)
    assert first.written == COUNT, first
    print(
        f"first poll (inserts): API call {first.api_seconds * 1000:.0f} ms, "
        f"parse + bulk write {first.write_seconds * 1000:.0f} ms"
    )
    for _ in range(POLLS):
        result = metrics_poll_site(site=site)
        assert result.written == COUNT, result
        out["api"].append(result.api_seconds)
        out["write"].append(result.write_seconds)
        out["total"].append(result.api_seconds + result.write_seconds)
    return out


def bench_chart_api(made: list[Any]) -> dict[str, list[float]]:
    from django.contrib.auth.models import User
    from django.test import Client

    owner = User.objects.get(pk=made[0].owner_id)
    client = Client()
    client.force_login(owner)
    picks = made[:: max(1, len(made) // 50)][:50]
    out: dict[str, list[float]] = {}
    for timeframe in ("hour", "day"):
        for c in picks:  # warm the cache (one rrddata and one status/current each)
            assert (
                client.get(f"/api/v1/containers/{c.pk}/metrics/?timeframe={timeframe}").status_code
                == 200
            )
        times = []
        for n in range(REQUESTS):
            c = picks[n % len(picks)]
            started = time.perf_counter()
            response = client.get(f"/api/v1/containers/{c.pk}/metrics/?timeframe={timeframe}")
            times.append(time.perf_counter() - started)
            assert response.status_code == 200
        out[timeframe] = times
    return out


def bench_alert_storm(site: Any, made: list[Any]) -> list[tuple[str, float, int, int]]:
    """(phase, seconds, statements, deliveries queued) for every container noisy at once."""
    from datetime import timedelta

    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from auth import notifications
    from containers.metrics.alerts import evaluate_alerts
    from containers.metrics.poll import SampleRow

    queued: list[Any] = []
    notifications.enqueue_delivery = lambda *args: queued.append(args)
    t0 = timezone.now()

    def samples(now: Any, cpu: float) -> list[SampleRow]:
        return [
            SampleRow(c.pk, now, "running", cpu, 2, 1, 512, 0, 0, 1, 0, 0, 0, 0, *[None] * 4)
            for c in made
        ]

    out = []
    for phase, minute, cpu in (
        ("seen", 0, 1.0),
        ("raised", 5, 1.0),
        ("held", 6, 1.0),
        ("cleared", 7, 0.1),
    ):
        now = t0 + timedelta(minutes=minute)
        rows, before = samples(now, cpu), len(queued)
        with CaptureQueriesContext(connection) as seen:
            started = time.perf_counter()
            evaluate_alerts(rows, site=site, now=now)
            took = time.perf_counter() - started
        statements = [q for q in seen.captured_queries if q["sql"] not in ("BEGIN", "COMMIT")]
        out.append((phase, took, len(statements), len(queued) - before))
    return out


def main() -> int:
    from pvesim.testing import SimulatorProcess

    rd = run_dir("metrics")
    setup_django(rd, ALLOWED_HOSTS="127.0.0.1,localhost,testserver")
    from django.db import connection

    sim = SimulatorProcess(rd / "pvesim", nodes=("pve1", "pve2"), tokens={TOKEN: SECRET})
    with sim:
        seeded = seed_simulator(sim)
        site, made = seed_portal(sim)
        print(f"{COUNT} containers on {connection.vendor}; simulator seeded in {seeded:.1f} s")
        poll = bench_poll(site)
        ms = {k: [v * 1000 for v in vs] for k, vs in poll.items()}
        print(
            f"poll x{POLLS} (updates): API call median {statistics.median(ms['api']):.0f} ms; "
            f"parse + bulk write median {statistics.median(ms['write']):.0f} ms, "
            f"max {max(ms['write']):.0f} ms; whole poll median "
            f"{statistics.median(ms['total']):.0f} ms"
        )
        chart = bench_chart_api(made)
        for timeframe, times in chart.items():
            t = [v * 1000 for v in times]
            print(
                f"chart API {timeframe}, warm cache, {REQUESTS} requests: "
                f"p50 {percentile(t, 0.5):.1f} ms, p95 {percentile(t, 0.95):.1f} ms"
            )
        for phase, took, statements, queued in bench_alert_storm(site, made):
            print(
                f"alert storm, {COUNT} noisy at once, {phase}: {took * 1000:.0f} ms, "
                f"{statements} statements, {queued} deliveries queued"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
