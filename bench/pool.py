"""Create-to-running with a warm pool against without, at real hardware's task times.

The stack is the whole portal on loopback (bench._stack: the simulator with guest
emulation, so a claim really logs in over SSH to install the owner's keys; the gateway's
real nginx and dnsmasq; a job worker; gunicorn serving the REST API) plus a pool worker
(queue `pool`, one at a time, as deployed). The simulator's tasks take what they take on
real hardware: vzcreate BENCH_CREATE_SECONDS (12), vzstart BENCH_START_SECONDS (2), every
other task 1 s.

Each side makes BENCH_POOL_CREATES (20) containers through `POST /api/v1/containers/`, one
after another as a user would (BENCH_POOL_WAVE, 1: that many at once), with an SSH key.
A create's time is from sending its POST to its job's recorded end (`finished_at`: the
container runs, its address is served and its keys are in). Between the sides, the containers are deleted.

- without: every pool's target 0, each create makes its CT (vzcreate, then vzstart);
- with: 10 members per node made ahead (the pool is filled before the side starts, with
  vzcreate at 0.2 s so the fill does not take 4 minutes; the members are the same either
  way), then vzcreate back at its real time, so the refill that each claim asks for runs
  on the pool worker at real speed during the side, as it would.

Printed: median, p95 and max of each side, the ratio of the medians (target <= 0.3), the
median with the pool less the start task's own time (target <= 1 s), the hit rate, and
the mean time per job step.

    python -m bench pool
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bench._stack import Stack, missing_binaries, private_dirs, start_stack

CREATE_SECONDS = float(os.environ.get("BENCH_CREATE_SECONDS", "12"))
START_SECONDS = float(os.environ.get("BENCH_START_SECONDS", "2"))
CREATES = int(os.environ.get("BENCH_POOL_CREATES", "20"))
WAVE = int(os.environ.get("BENCH_POOL_WAVE", "1"))
FILL_CREATE_SECONDS = 0.2
POLL = 0.02


@dataclass
class Create:
    hostname: str
    job_id: str
    seconds: float  # POST sent -> the job's recorded end
    status: str
    pool: bool  # the job's plan was a claim
    steps: dict[str, float]


# -- one create, as a script would make it ------------------------------------------------------
def _post(stack: Stack, hostname: str, key: str) -> tuple[float, str]:
    import requests

    sent = time.time()
    r = requests.post(
        f"{stack.url}/api/v1/containers/",
        json={"hostname": hostname, "template": "debian-12", "ssh_public_keys": key},
        headers={"Authorization": f"Bearer {stack.token}"},
        timeout=60,
    )
    if r.status_code != 202:
        raise RuntimeError(f"POST {hostname}: {r.status_code} {r.text[:300]}")
    return sent, str(r.json()["job"]["id"])


def _wait_job(job_id: str, timeout: float = 180.0) -> Any:
    from containers.models import Job

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = Job.objects.get(pk=job_id)
        if job.status not in ("queued", "running"):
            return job
        time.sleep(POLL)
    raise RuntimeError(f"job {job_id} did not end in {timeout:.0f} s")


def _steps(job: Any) -> dict[str, float]:
    out = {"queued": (job.started_at - job.created_at).total_seconds()} if job.started_at else {}
    for st in job.steps:
        if st.get("started_at") and st.get("finished_at") and st["state"] == "done":
            took = datetime.fromisoformat(st["finished_at"]) - datetime.fromisoformat(
                st["started_at"]
            )
            out[st["name"]] = took.total_seconds()
    return out


def timed_create(stack: Stack, hostname: str, key: str) -> Create:
    from django.db import connection

    from containers.pool.claim import is_claim

    try:
        sent, job_id = _post(stack, hostname, key)
        job = _wait_job(job_id)
        return Create(
            hostname=hostname,
            job_id=job_id,
            seconds=job.finished_at.timestamp() - sent,
            status=job.status,
            pool=is_claim(job.params),
            steps=_steps(job),
        )
    finally:
        connection.close()  # this thread's


def one_side(stack: Stack, name: str, key: str) -> list[Create]:
    done: list[Create] = []
    with ThreadPoolExecutor(max_workers=WAVE) as pool:
        for first in range(0, CREATES, WAVE):
            names = [f"{name}-{i}" for i in range(first, min(first + WAVE, CREATES))]
            done += list(pool.map(lambda h: timed_create(stack, h, key), names))
    return done


def delete_all(stack: Stack) -> None:
    from containers import services
    from containers.models import LIVE, Container, Job

    jobs = [
        services.container_delete(container=c, actor=None).pk
        for c in Container.objects.filter(LIVE, site=stack.site)
    ]
    deadline = time.monotonic() + 300
    while Job.objects.filter(pk__in=jobs, status__in=("queued", "running")).exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the deletes did not end in 300 s")
        time.sleep(0.2)


# -- the pool ------------------------------------------------------------------------------------
def set_targets(stack: Stack, target: int) -> None:
    from containers.pool.services import pool_target_set

    template = stack.site.templates.get()
    for node in stack.site.nodes.all():
        pool_target_set(template=template, node=node, target=target, actor=None)


def fill(stack: Stack, per_node: int) -> float:
    """Fill the pool (fast creates), wait for every member, then back to real times."""
    from containers.pool.models import PoolMember, PoolMemberState, PoolTarget

    stack.sim.admin.set_task_seconds("vzcreate", FILL_CREATE_SECONDS)
    started = time.monotonic()
    PoolTarget.objects.update(hits=0, misses=0)
    set_targets(stack, per_node)
    want = per_node * stack.site.nodes.count()
    deadline = time.monotonic() + 300
    while PoolMember.objects.filter(state=PoolMemberState.READY).count() < want:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the pool did not reach {want} ready members in 300 s")
        time.sleep(0.2)
    stack.sim.admin.set_task_seconds("vzcreate", CREATE_SECONDS)
    return time.monotonic() - started


def hit_rate() -> tuple[int, int]:
    from containers.pool.models import PoolTarget

    pools = list(PoolTarget.objects.all())
    return sum(p.hits for p in pools), sum(p.misses for p in pools)


# -- report ------------------------------------------------------------------------------------
def _p95(xs: list[float]) -> float:
    ordered = sorted(xs)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def _print_side(title: str, creates: list[Create]) -> float:
    ok = [c.seconds for c in creates if c.status == "succeeded"]
    failed = len(creates) - len(ok)
    med = statistics.median(ok) if ok else float("nan")
    print(
        f"{title:<14} median {med:6.2f} s, p95 {_p95(ok):6.2f} s, max {max(ok):6.2f} s, "
        f"min {min(ok):6.2f} s over {len(ok)} creates"
        + (f", {failed} FAILED" if failed else "")
        + f"; {sum(c.pool for c in creates)} from the pool"
    )
    names: dict[str, list[float]] = {}
    for c in creates:
        for step, took in c.steps.items():
            names.setdefault(step, []).append(took)
    print(
        "   mean s per step: "
        + ", ".join(f"{k} {statistics.mean(v):.3f}" for k, v in names.items())
    )
    return med


def _keypair(rd: Path) -> str:
    key = rd / "owner"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bench@pool", "-f", str(key)],
        check=True,
    )
    return (rd / "owner.pub").read_text().strip()


def run(stack: Stack, rd: Path) -> None:
    from portal.procs import CeleryWorker

    key = _keypair(rd)
    stack.sim.admin.set_task_seconds(None, 1.0)
    stack.sim.admin.set_task_seconds("vzcreate", CREATE_SECONDS)
    stack.sim.admin.set_task_seconds("vzstart", START_SECONDS)
    pool_worker = CeleryWorker(
        log_path=rd / "pool-worker.log", env=stack.env, queues="pool", concurrency=1, name="pool"
    ).start()
    try:
        print(
            f"tasks: vzcreate {CREATE_SECONDS:g} s, vzstart {START_SECONDS:g} s, others 1 s; "
            f"{CREATES} creates a side, {WAVE} at once"
        )
        timed_create(stack, "warm-up", key)  # both sides meet warm processes
        delete_all(stack)
        without = one_side(stack, "cold", key)
        delete_all(stack)
        per_node = (CREATES + 1) // 2
        took = fill(stack, per_node)
        print(f"pool filled: {per_node} members per node in {took:.1f} s (fast vzcreate)")
        with_pool = one_side(stack, "warm", key)
        hits, misses = hit_rate()
    finally:
        pool_worker.stop()
    cold = _print_side("without pool", without)
    warm = _print_side("with pool", with_pool)
    print(f"hit rate       {hits}/{hits + misses} = {hits / max(hits + misses, 1):.0%}")
    print(f"ratio          {warm / cold:.3f} (with / without, medians; target <= 0.3)")
    print(
        f"over start     {warm - START_SECONDS:+.2f} s (the median with the pool less the "
        f"start task's {START_SECONDS:g} s; target <= 1 s)"
    )


def main() -> None:
    missing = missing_binaries()
    if missing:
        print(f"not installed: {', '.join(missing)} (openssh-server, nginx, dnsmasq-base)")
        return
    with ExitStack() as cleanup:
        rd, guests = private_dirs("pool", cleanup)
        began = time.monotonic()
        # Threads for a wave of creates, and as many for the deletes between the sides.
        stack = start_stack(rd, guests, cleanup, task_seconds=1.0, concurrency=2 * WAVE)
        print(f"stack started in {time.monotonic() - began:.1f} s")
        run(stack, rd)


if __name__ == "__main__":
    main()
