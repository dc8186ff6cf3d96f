"""100 creates through the real worker path: wall time against the ideal, and portal CPU.

Two Celery worker processes (threads pool) take jobs from a private Redis and drive
the simulator over HTTPS, whose every task takes a fixed time. The ideal wall time
is the simulated Proxmox time divided by the workers' concurrency; the ratio shows
what the portal adds (queueing, polling, database). CPU is the workers' own CPU plus
the CPU of the create service calls, per container.

The machine is shared by the workers, the simulator, Redis and the database, so one
round varies by several per cent: the bench runs BENCH_ROUNDS rounds (3) on the same
stack and prints each and their medians.

    python -m bench provision        # or: make bench
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from dataclasses import dataclass
from typing import Any

from bench._env import process_cpu_seconds, run_dir, seed_site, setup_django

CONTAINERS = int(os.environ.get("BENCH_CONTAINERS", "100"))
TASK_SECONDS = float(os.environ.get("BENCH_TASK_SECONDS", "1.0"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
WORKERS = 2
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "10"))  # 100 / (2 x 10): whole rounds
TASKS_PER_CREATE = 2  # vzcreate, vzstart
IDEAL = CONTAINERS * TASKS_PER_CREATE * TASK_SECONDS / (WORKERS * CONCURRENCY)


@dataclass
class Round:
    wall: float
    worker_ms: float  # per container
    service_ms: float  # per container
    sim_ms: float  # per container (the simulator's, not the portal's)
    failed: int
    steps: dict[str, float]
    first_start: float
    last_finish: float

    @property
    def ratio(self) -> float:
        return self.wall / IDEAL

    @property
    def portal_ms(self) -> float:
        return self.worker_ms + self.service_ms


def step_breakdown(jobs: Any) -> dict[str, float]:
    """Mean time per job spent queued and in each step (to see where the overhead is)."""
    from datetime import datetime

    totals: dict[str, float] = {}
    count = 0
    for job in jobs:
        count += 1
        totals["queued"] = (
            totals.get("queued", 0.0) + (job.started_at - job.created_at).total_seconds()
        )
        for st in job.steps:
            if st.get("started_at") and st.get("finished_at") and st["state"] == "done":
                took = datetime.fromisoformat(st["finished_at"]) - datetime.fromisoformat(
                    st["started_at"]
                )
                totals[st["name"]] = totals.get(st["name"], 0.0) + took.total_seconds()
    return {k: v / max(count, 1) for k, v in totals.items()}


def one_round(n: int, *, owner: Any, template: Any, workers: list[Any], sim: Any) -> Round:
    from containers import services
    from containers.models import Job

    cpu_before = sum(process_cpu_seconds(w.pid) for w in workers)
    sim_before = process_cpu_seconds(sim.proc.pid)
    started = time.monotonic()
    service_cpu = time.process_time()
    ids = [
        services.container_create(owner=owner, hostname=f"r{n}-{i}", template=template).pk
        for i in range(CONTAINERS)
    ]
    service_cpu = time.process_time() - service_cpu
    while Job.objects.filter(pk__in=ids, status__in=["queued", "running"]).exists():
        time.sleep(0.02)
    wall = time.monotonic() - started
    worker_cpu = sum(process_cpu_seconds(w.pid) for w in workers) - cpu_before
    sim_cpu = process_cpu_seconds(sim.proc.pid) - sim_before

    jobs = list(Job.objects.filter(pk__in=ids))
    t0 = min(j.created_at for j in jobs)
    starts = [j.started_at for j in jobs if j.started_at]
    ends = [j.finished_at for j in jobs if j.finished_at]
    return Round(
        wall=wall,
        worker_ms=1000 * worker_cpu / CONTAINERS,
        service_ms=1000 * service_cpu / CONTAINERS,
        sim_ms=1000 * sim_cpu / CONTAINERS,
        failed=sum(1 for j in jobs if j.status != "succeeded"),
        steps=step_breakdown(jobs),
        first_start=(min(starts) - t0).total_seconds(),
        last_finish=(max(ends) - t0).total_seconds(),
    )


def _warm_up(owner: Any, template: Any) -> None:
    """A running portal's web process is warm: one create (cancelled before a worker
    takes it) loads what the first request loads and opens its connections. The
    workers start cold; their first round pays for that."""
    from containers import services

    warm = services.container_create(owner=owner, hostname="warm-up", template=template)
    services.job_cancel(job=warm, actor=None)
    time.sleep(0.5)


def _run_rounds(owner: Any, template: Any, workers: list[Any], sim: Any) -> None:
    print(f"containers          {CONTAINERS} per round, {ROUNDS} rounds on one stack")
    print(f"proxmox task time   {TASK_SECONDS:.2f} s x {TASKS_PER_CREATE} per create")
    print(f"workers             {WORKERS} x {CONCURRENCY} threads")
    print(f"ideal time          {IDEAL:.2f} s")
    rounds: list[Round] = []
    for n in range(1, ROUNDS + 1):
        r = one_round(n, owner=owner, template=template, workers=workers, sim=sim)
        rounds.append(r)
        print(
            f"round {n}: wall {r.wall:.2f} s, ratio {r.ratio:.3f}, portal CPU "
            f"{r.portal_ms:.1f} ms/container (workers {r.worker_ms:.1f}, service "
            f"{r.service_ms:.1f}), simulator {r.sim_ms:.1f} ms, {r.failed} failed; "
            f"first job started {r.first_start:.2f} s, last done {r.last_finish:.2f} s"
        )
        print("   mean s per job: " + ", ".join(f"{k} {v:.3f}" for k, v in r.steps.items()))
    ratio = statistics.median(r.ratio for r in rounds)
    cpu = statistics.median(r.portal_ms for r in rounds)
    print(f"ratio wall/ideal    {ratio:.3f} median   (target <= 1.15)")
    print(f"portal CPU          {cpu:.1f} ms per container, median   (target <= 50)")
    failed = sum(r.failed for r in rounds)
    if failed:
        print(f"FAILED JOBS         {failed}")


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
        template, owner = seed_site(sim, secret)
        for i in range(WORKERS):
            workers.append(
                CeleryWorker(
                    log_path=rd / f"worker{i}.log",
                    env=env,
                    concurrency=CONCURRENCY,
                    name=f"bench{i}",
                ).start()
            )
        _warm_up(owner, template)
        _run_rounds(owner, template, workers, sim)
    finally:
        for w in workers:
            w.stop()
        sim.stop()
        redis.stop()


if __name__ == "__main__":
    main()
