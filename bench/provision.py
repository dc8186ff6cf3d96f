"""100 creates through the real worker path: wall time against the ideal, and portal CPU.

Two Celery worker processes (threads pool) take jobs from a private Redis and drive
the simulator over HTTPS, whose every task takes a fixed time. The ideal wall time
is the simulated Proxmox time divided by the workers' concurrency; the ratio shows
what the portal adds (queueing, polling, database). CPU is the workers' own CPU plus
the CPU of the create service calls, per container.

    python -m bench provision        # or: make bench
"""

from __future__ import annotations

import os
import time
import uuid

from bench._env import process_cpu_seconds, run_dir, setup_django

CONTAINERS = int(os.environ.get("BENCH_CONTAINERS", "100"))
TASK_SECONDS = float(os.environ.get("BENCH_TASK_SECONDS", "1.0"))
WORKERS = 2
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "10"))  # 100 / (2 x 10): whole rounds
TASKS_PER_CREATE = 2  # vzcreate, vzstart


def step_breakdown(jobs: object) -> dict[str, float]:
    """Mean time per job spent queued and in each step (to see where the overhead is)."""
    from datetime import datetime

    totals: dict[str, float] = {}
    count = 0
    for job in jobs:  # type: ignore[attr-defined]
        count += 1
        totals["queued"] = (
            totals.get("queued", 0.0) + (job.started_at - job.created_at).total_seconds()
        )
        for st in job.steps:
            if st.get("started_at") and st.get("finished_at"):
                took = datetime.fromisoformat(st["finished_at"]) - datetime.fromisoformat(
                    st["started_at"]
                )
                totals[st["name"]] = totals.get(st["name"], 0.0) + took.total_seconds()
        totals["total"] = (
            totals.get("total", 0.0) + (job.finished_at - job.created_at).total_seconds()
        )
    return {k: v / max(count, 1) for k, v in totals.items()}


def main() -> None:
    from portal.procs import CeleryWorker, RedisServer
    from pvesim.testing import SimulatorProcess

    rd = run_dir("provision")
    redis = RedisServer(rd / "redis").start()
    secret = str(uuid.uuid4())
    sim = SimulatorProcess(
        rd / "pvesim",
        nodes=("pve1", "pve2"),
        tokens={"portal@pve!portal": secret},
        task_seconds=TASK_SECONDS,
    )
    sim.start()
    workers: list[CeleryWorker] = []
    try:
        # The gateway step only asks for an apply here (bench.gateway measures the gateway).
        env = setup_django(
            rd, CELERY_BROKER_URL=redis.url, JOB_LEASE_SECONDS="60", GATEWAY_JOB_WAIT="false"
        )
        from django.contrib.auth.models import User

        from containers import services
        from containers.models import Job, Template
        from networking.models import Node, Site

        site = Site.objects.create(
            name="Bench",
            slug="bench",
            domain="apps.bench.test",
            internal_domain="cluster.bench.test",
        )
        for name, slot in (("pve2", 0), ("pve1", 1)):
            Node.objects.create(
                site=site,
                name=name,
                slot=slot,
                api_url=sim.url,
                token_id="portal@pve!portal",
                token_secret=secret,
                ca_bundle=str(sim.ca_path),
            )
        template = Template.objects.create(
            site=site,
            name="debian-12",
            display_name="Debian 12",
            volid="local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
            default_memory_mib=512,
            default_disk_gib=4,
        )
        owner = User.objects.create(username="bench")
        for i in range(WORKERS):
            workers.append(
                CeleryWorker(
                    log_path=rd / f"worker{i}.log",
                    env=env,
                    concurrency=CONCURRENCY,
                    name=f"bench{i}",
                ).start()
            )
        cpu_before = sum(process_cpu_seconds(w.pid) for w in workers)

        started = time.monotonic()
        service_cpu = time.process_time()
        ids = [
            services.container_create(owner=owner, hostname=f"b{i}", template=template).pk
            for i in range(CONTAINERS)
        ]
        service_cpu = time.process_time() - service_cpu
        while Job.objects.filter(pk__in=ids, status__in=["queued", "running"]).exists():
            time.sleep(0.05)
        wall = time.monotonic() - started
        worker_cpu = sum(process_cpu_seconds(w.pid) for w in workers) - cpu_before

        failed = Job.objects.filter(pk__in=ids).exclude(status="succeeded").count()
        breakdown = step_breakdown(Job.objects.filter(pk__in=ids))
        ideal = CONTAINERS * TASKS_PER_CREATE * TASK_SECONDS / (WORKERS * CONCURRENCY)
        per_container_ms = 1000 * (worker_cpu + service_cpu) / CONTAINERS
        print(f"containers          {CONTAINERS} ({failed} failed)")
        print(f"proxmox task time   {TASK_SECONDS:.2f} s x {TASKS_PER_CREATE} per create")
        print(f"workers             {WORKERS} x {CONCURRENCY} threads")
        print(f"wall time           {wall:.2f} s")
        print(f"ideal time          {ideal:.2f} s")
        print(f"ratio wall/ideal    {wall / ideal:.3f}   (target <= 1.15)")
        print(
            f"portal CPU          {per_container_ms:.1f} ms per container "
            f"(workers {1000 * worker_cpu / CONTAINERS:.1f}, service {1000 * service_cpu / CONTAINERS:.1f}; "
            "target <= 50)"
        )
        print("mean seconds per job: " + ", ".join(f"{k} {v:.3f}" for k, v in breakdown.items()))
    finally:
        for w in workers:
            w.stop()
        sim.stop()
        redis.stop()


if __name__ == "__main__":
    main()
