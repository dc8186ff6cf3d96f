"""Fixtures of the standing reliability suite: a simulator of its own (with a token it may
revoke), a worker with short Proxmox timeouts, and the agreement check after every case.
Its figures are counted by tests/fixtures/standing.py."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from portal.procs import CeleryWorker, RedisServer
from tests.conftest import IN_CI, TOKEN_ID, TOKEN_SECRET, Workers

# The worker's Proxmox timeout here: latency faults go above it without making a case slow.
FAULT_TIMEOUT = 1.5
REVOCABLE_TOKEN = "portal@pve!revocable"
REVOCABLE_SECRET = "0d6c1c55-7e0b-4a43-9a9e-revocable000"


@pytest.fixture(scope="session")
def fault_sim(run_dir: Path) -> Iterator[Any]:
    """The reliability suite's own simulator: faults here never leak into other tests."""
    from pvesim.testing import SimulatorProcess

    simulator = SimulatorProcess(
        run_dir / "pvesim-faults",
        nodes=("pve1", "pve2"),
        tokens={TOKEN_ID: TOKEN_SECRET, REVOCABLE_TOKEN: REVOCABLE_SECRET},
        task_seconds=0.2,
        lock_timeout=1.0,
    )
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture
def site(fault_sim: Any, transactional_db: None, worker_env: dict[str, str]) -> Iterator[Any]:
    """Site `local` on the suite's simulator; `site.baseline`: the guests it held before.

    It needs `worker_env` even where no worker runs: the first job enqueued fixes the test
    process's Celery broker, and one sent before the session's Redis is configured would
    send every later job of the session to the default filesystem:// broker, unseen."""
    from tests.conftest import _let_running_jobs_end
    from tests.factories import make_site
    from tests.functional.reliability.agreement import guest_vmids

    fault_sim.admin.reset_faults()
    s = make_site(fault_sim)
    s.baseline = guest_vmids(fault_sim)
    yield s
    fault_sim.admin.reset_faults()
    _let_running_jobs_end()


class FaultWorker:
    """The worker that runs the suite's jobs (the shared ones are paused meanwhile)."""

    def __init__(self, workers: Workers, run_dir: Path) -> None:
        env = {**workers.env, "PROXMOX_TIMEOUT": str(FAULT_TIMEOUT)}
        self.worker = CeleryWorker(
            log_path=run_dir / "celery-faults.log",
            env=env,
            queues="proxmox",
            concurrency=8,
            name="faults",
        )

    def alive(self) -> bool:
        return self.worker.process.alive()

    def ensure(self) -> CeleryWorker:
        if not self.alive():
            self.worker.start()
        return self.worker

    def kill(self) -> None:
        self.worker.kill()

    def stop(self) -> None:
        self.worker.stop()


@pytest.fixture(scope="module")
def fault_worker(make_worker: Workers, run_dir: Path) -> Iterator[FaultWorker]:
    make_worker.pause_all()
    fw = FaultWorker(make_worker, run_dir)
    fw.ensure()
    yield fw
    fw.stop()
    make_worker.resume_all()


class RedisControl:
    """Stops and restarts the session's Redis on its port (SHUTDOWN NOSAVE: what a crash
    loses); the restarted server lives to the end of the session."""

    def __init__(self, url: str, run_dir: Path) -> None:
        from urllib.parse import urlsplit

        self.url, self.run_dir = url, run_dir
        self.port = int(urlsplit(url).port or 6379)
        self.started: list[RedisServer] = []

    def up(self) -> bool:
        from portal.procs import port_open

        return port_open("127.0.0.1", self.port)

    def stop(self) -> None:
        import redis

        with contextlib.suppress(redis.exceptions.ConnectionError):
            redis.Redis.from_url(self.url).shutdown(nosave=True)
        wait_for(lambda: not self.up(), timeout=10, what="redis gone")

    def start(self) -> None:
        server = RedisServer(self.run_dir / f"redis-restart-{len(self.started)}", port=self.port)
        self.started.append(server.start())


@pytest.fixture(scope="session")
def redis_control(redis_url: str, run_dir: Path) -> Iterator[RedisControl]:
    if os.environ.get("REDIS_URL"):
        message = "the Redis restart case needs the session's own Redis (unset REDIS_URL)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    control = RedisControl(redis_url, run_dir)
    yield control
    for server in control.started:
        server.stop()


def wait_for(check: Any, *, timeout: float, what: str, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what}: not seen within {timeout} s")
