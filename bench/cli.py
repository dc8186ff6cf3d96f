"""portalctl: its start-up, and `containers create --wait` against the job it waits for.

1. Start-up: `portalctl --version`, run many times, beside other small commands of the
   machine (`git --version`, `ssh -V`) and the bare interpreter (`python -c pass`), each
   the median of its runs. Target: under 150 ms.
2. `portalctl containers create NAME --template T --wait --json` run as a user runs it,
   against gunicorn (deploy/gunicorn.conf.py), a Celery worker, Redis and the simulator
   whose every task takes BENCH_TASK_SECONDS (two tasks per create). Each run is split
   by the server's own timestamps of the job:
     before   the command's start to the job's creation (start-up and the request),
     job      the job's creation to its end (queueing, the simulator's tasks, the portal),
     after    the job's end to the command's exit (noticing the end, and exiting).
   Target: `after` under 0.3 s (a wait ends within a poll of the job's end).

    python -m bench cli
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from bench._env import run_dir, seed_site, setup_django

RUNS = int(os.environ.get("BENCH_CLI_RUNS", "25"))
CREATES = int(os.environ.get("BENCH_CLI_CREATES", "10"))
TASK_SECONDS = float(os.environ.get("BENCH_TASK_SECONDS", "1.0"))
TASKS_PER_CREATE = 2  # vzcreate, vzstart
PORTALCTL = str(Path(sys.executable).with_name("portalctl"))
ROOT = Path(__file__).resolve().parents[1]


def median_ms(argv: list[str]) -> float:
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True)
        times.append(1000 * (time.perf_counter() - started))
    return statistics.median(times)


def startup() -> None:
    print(f"start-up, median of {RUNS} runs:")
    ours = median_ms([PORTALCTL, "--version"])
    rows = [("portalctl --version", ours)]
    for label, argv in (
        ("git --version", ["git", "--version"]),
        ("ssh -V", ["ssh", "-V"]),
        ("python -c pass", [sys.executable, "-c", "pass"]),
    ):
        if shutil.which(argv[0]) or argv[0] == sys.executable:
            rows.append((label, median_ms(argv)))
    for label, ms in rows:
        print(f"  {label:<22} {ms:7.1f} ms   portalctl/this {ours / ms:5.1f}x")
    print(f"  portalctl --version {ours:.1f} ms (target < 150)")


def _seed(sim: Any, secret: str) -> str:
    """The bench's site and template, and a write token of its user."""
    from auth.tokens import token_create

    _, owner = seed_site(sim, secret)
    _, token = token_create(user=owner, name="bench", scope="write", expires_in_days=7)
    return token


def _stamp(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def one_create(url: str, token: str, name: str) -> tuple[float, float, float]:
    import json

    env = {**os.environ, "PORTAL_URL": url, "PORTAL_TOKEN": token}
    started = time.time()
    done = subprocess.run(
        [PORTALCTL, "containers", "create", name, "-t", "debian-12", "--wait", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    ended = time.time()
    if done.returncode != 0:
        raise SystemExit(f"portalctl failed ({done.returncode}): {done.stderr}")
    job = json.loads(done.stdout)["job"]
    created, finished = _stamp(job["created_at"]), _stamp(job["finished_at"])
    return created - started, finished - created, ended - finished


def creates(url: str, token: str) -> None:
    sim_seconds = TASKS_PER_CREATE * TASK_SECONDS
    print(
        f"\ncontainers create --wait, {CREATES} runs (simulator: {sim_seconds:.1f} s of tasks each)"
    )
    print(
        f"  {'run':<4} {'wall s':>7} {'before':>7} {'job':>7} {'after':>7} {'wall/job':>9} {'wall/tasks':>11}"
    )
    rows = []
    for n in range(CREATES):
        before, job, after = one_create(url, token, f"cli{n}-{uuid.uuid4().hex[:6]}")
        wall = before + job + after
        rows.append((wall, before, job, after))
        print(
            f"  {n + 1:<4} {wall:7.2f} {before:7.2f} {job:7.2f} {after:7.2f} "
            f"{wall / job:9.2f} {wall / sim_seconds:11.2f}"
        )
    wall, before, job, after = (statistics.median(col) for col in zip(*rows, strict=True))
    print(
        f"  med  {wall:7.2f} {before:7.2f} {job:7.2f} {after:7.2f} "
        f"{wall / job:9.2f} {wall / sim_seconds:11.2f}"
    )
    print(f"  waiting's overhead after the job's end: {after:.3f} s median (target < 0.3)")
    print(f"  the command's whole overhead over the job: {wall - job:.3f} s median")


def main() -> None:
    from portal.procs import CeleryWorker, Managed, RedisServer, free_port, port_open, wait_until
    from pvesim.testing import SimulatorProcess

    startup()
    rd = run_dir("cli")
    redis = RedisServer(rd / "redis").start()
    secret = str(uuid.uuid4())
    sim = SimulatorProcess(
        rd / "pvesim", nodes=("pve1", "pve2"), tokens={"portal@pve!portal": secret},
        task_seconds=TASK_SECONDS,
    )  # fmt: skip
    sim.start()
    started: list[Any] = []
    try:
        env = setup_django(
            rd, CELERY_BROKER_URL=redis.url, GATEWAY_JOB_WAIT="false", ALLOWED_HOSTS="127.0.0.1"
        )
        token = _seed(sim, secret)
        started.append(
            CeleryWorker(log_path=rd / "worker.log", env=env, concurrency=4, name="bench").start()
        )
        port = free_port()
        web_env = {**os.environ, **env, "WEB_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "1"}
        web_env["CACHE_URL"] = redis.url.rsplit("/", 1)[0] + "/5"
        conf = str(ROOT / "deploy" / "gunicorn.conf.py")
        started.append(
            Managed(
                [sys.executable, "-m", "gunicorn", "-c", conf, "portal.wsgi"],
                log_path=rd / "web.log",
                env=web_env,
            ).start()
        )
        wait_until(lambda: port_open("127.0.0.1", port), timeout=30, what="gunicorn")
        creates(f"http://127.0.0.1:{port}", token)
    finally:
        for proc in reversed(started):
            proc.stop()
        sim.stop()
        redis.stop()


if __name__ == "__main__":
    main()
