"""Fixtures that start the real components: Redis, the simulator over HTTPS, Celery workers.

Each is started on loopback in a private directory and stopped by its PID. In CI
(CI=true) a missing component fails the test; elsewhere it skips it.

The suite has two rooms: tests/unit (no component: tests/unit/conftest.py refuses a test
there that asks for one) and tests/functional (everything that starts one). Fixtures
both rooms need are plugins in tests/fixtures, listed in `pytest_plugins` below.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from portal.procs import (
    CeleryWorker,
    Managed,
    RedisServer,
    find_binary,
    port_open,
    wait_until,
)
from tests.testenv import DEPLOY_DIR, TEST_ENV

pytest_plugins = [
    "tests.fixtures.networking",
    "tests.fixtures.launchpad",
    "tests.fixtures.standing",
    "tests.fixtures.notifications",
    "tests.fixtures.wazuh_double",
]

IN_CI = os.environ.get("CI", "").lower() == "true"
GUNICORN_CONF = Path(__file__).resolve().parent.parent / "deploy" / "gunicorn.conf.py"


@contextmanager
def gunicorn(env: dict[str, str], *, port: int, log_path: Path) -> Iterator[str]:
    """The portal under gunicorn with the shipped configuration, on 127.0.0.1:`port`
    (`env` carries WEB_BIND and the rest); its URL while the block runs."""
    server = Managed(
        [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), "portal.wsgi"],
        log_path=log_path,
        env=env,
    ).start()
    try:
        wait_until(lambda: port_open("127.0.0.1", port), timeout=30, what="gunicorn")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def need_binary(name: str) -> str:
    """The path of a binary the test needs: fail in CI if it is missing, skip elsewhere."""
    found = find_binary(name)
    if found:
        return found
    message = f"{name} is not installed (run .ci/run or install it with apt)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def pytest_sessionfinish(session: pytest.Session) -> None:
    shutil.rmtree(DEPLOY_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("run")


@pytest.fixture(scope="session")
def redis_url(run_dir: Path) -> Iterator[str]:
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    need_binary("redis-server")
    server = RedisServer(run_dir / "redis").start()
    yield server.url
    server.stop()


# -- the simulator -------------------------------------------------------------------------------
TOKEN_ID = "portal@pve!portal"
TOKEN_SECRET = "5f0b3c1e-8d2a-4e6b-9c7d-0a1b2c3d4e5f"


@pytest.fixture(scope="session")
def sim(run_dir: Path) -> Iterator[Any]:
    """One pvesim process over HTTPS for the session (two nodes, short tasks, DHCP emulation)."""
    from pvesim.testing import SimulatorProcess

    dhcp_hosts = run_dir / "dhcp-hosts"
    dhcp_hosts.write_text("")
    simulator = SimulatorProcess(
        run_dir / "pvesim",
        nodes=("pve1", "pve2"),
        tokens={TOKEN_ID: TOKEN_SECRET},
        task_seconds=0.2,
        dhcp_hosts=dhcp_hosts,
        lock_timeout=1.0,
    )
    simulator.start()
    simulator.dhcp_hosts_path = dhcp_hosts
    yield simulator
    simulator.stop()


@pytest.fixture
def cluster(sim: Any, db: None) -> Iterator[Any]:
    """A site `local` with pve1 (slot 1) and pve2 (slot 0) on the simulator, and a template."""
    from tests.factories import make_site

    sim.admin.reset_faults()
    site = make_site(sim)
    yield site
    sim.admin.reset_faults()
    _let_running_jobs_end()


def _let_running_jobs_end(timeout: float = 10.0) -> None:
    """A job a worker is still running writes in transactions; flushing the database for
    the next test under it can deadlock (PostgreSQL), so give it a moment to end."""
    import time

    from containers.models import Job, JobStatus

    deadline = time.monotonic() + timeout
    while Job.objects.filter(status=JobStatus.RUNNING).exists() and time.monotonic() < deadline:
        time.sleep(0.05)


# -- the worker ------------------------------------------------------------------------------------
def database_url() -> str:
    """The URL of the test database, for processes started by the tests."""
    from django.db import connection

    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{Path(s['NAME']).resolve()}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@pytest.fixture(scope="session")
def worker_env(django_db_setup: None, redis_url: str, local_gateway: Any) -> dict[str, str]:
    from portal.celery import app

    settings.CELERY_BROKER_URL = redis_url
    app.conf.broker_url = redis_url
    # A test that enqueued before this fixture (no worker of its own) bound the app's
    # connection pools to the default broker, and they would keep sending there: drop
    # them, as Celery does after a fork (Celery._after_fork).
    if app._pool is not None:
        app._pool.force_close_all()
        app._pool = None
    app.amqp._producer_pool = None
    return {
        **TEST_ENV,  # DEPLOY_KEY_DIR and DEPLOY_SOURCE_DIR too: the same as this process's
        **local_gateway.env,  # workers apply into the session's private gateway
        "GATEWAY_JOB_WAIT": "true",
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": redis_url,
        "LOG_LEVEL": "INFO",
    }


class Workers:
    """The worker processes of the session; tests that need a worker to themselves pause the rest."""

    def __init__(self, env: dict[str, str], run_dir: Path) -> None:
        self.env, self.run_dir = env, run_dir
        self.started: list[CeleryWorker] = []
        self.paused: list[CeleryWorker] = []

    def __call__(self, name: str = "w", concurrency: int = 8, **kwargs: Any) -> CeleryWorker:
        w = CeleryWorker(
            log_path=self.run_dir / f"celery-{name}-{len(self.started)}.log",
            env=self.env,
            concurrency=concurrency,
            name=f"{name}{len(self.started)}",
            **kwargs,
        )
        self.started.append(w)
        return w.start()

    def pause_all(self) -> None:
        for w in self.started:
            if w.process.alive():
                w.stop()
                self.paused.append(w)

    def resume_all(self) -> None:
        while self.paused:
            self.paused.pop().start()

    def stop_all(self) -> None:
        for w in self.started:
            w.stop()


@pytest.fixture(scope="session")
def make_worker(
    worker_env: dict[str, str], run_dir: Path, gateway_worker: CeleryWorker
) -> Iterator[Workers]:
    workers = Workers(worker_env, run_dir)
    yield workers
    workers.stop_all()


@pytest.fixture(scope="session")
def worker(make_worker: Workers) -> CeleryWorker:
    """A Celery worker process shared by the end-to-end tests (jobs, and gateway applies)."""
    return make_worker("shared", queues="proxmox,gateway.local")


@pytest.fixture
def own_workers(make_worker: Workers) -> Iterator[Workers]:
    """For a test that must know which worker runs its job: the shared ones are paused."""
    make_worker.pause_all()
    before = len(make_worker.started)
    yield make_worker
    for w in make_worker.started[before:]:
        w.stop()
    make_worker.resume_all()


def wait_job(job_id: Any, *, timeout: float = 60.0) -> Any:
    """Wait for a job to reach a final state, as a user polling it would."""
    from containers.models import Job

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = Job.objects.get(pk=job_id)
        if job.is_final:
            return job
        time.sleep(0.05)
    job = Job.objects.get(pk=job_id)
    log = "\n".join(e.message for e in job.log_entries.order_by("id"))
    raise AssertionError(f"job {job_id} still {job.status} after {timeout} s; log:\n{log}")


# -- the gateway ---------------------------------------------------------------------------------------
GATEWAY_TEST_SETTINGS = {
    "GATEWAY_APPLY_TIMEOUT": 30.0,
    "GATEWAY_COALESCE_SECONDS": 0.1,
    "GATEWAY_COALESCE_MAX_SECONDS": 1.0,
    "GATEWAY_RELOAD_TIMEOUT": 8.0,
}


@pytest.fixture(scope="session")
def local_gateway(run_dir: Path) -> Iterator[Any]:
    """A private nginx and dnsmasq for the session, on loopback high ports.

    The stream proxy binds a random 127.x.y.1, so two sessions on one machine never
    compete for the same gateway ports. Jobs' gateway steps apply into it. It lives
    under pytest's 0700 temporary directory: its workers run as the invoking user.
    """
    import random

    from networking.gateway import LocalGateway

    need_binary("nginx")
    need_binary("dnsmasq")
    root = run_dir / "gateway"
    rnd = random.Random()
    bind = f"127.{rnd.randint(100, 250)}.{rnd.randint(1, 250)}.1"
    gw = LocalGateway(
        root, domains=["apps.example.test"], stream_bind=bind, **GATEWAY_TEST_SETTINGS
    )
    gw.start()
    yield gw
    gw.stop()


@pytest.fixture(scope="session")
def gateway_worker(worker_env: dict[str, str], run_dir: Path) -> Iterator[CeleryWorker]:
    """The gateway host's worker for site `local`: applies only, so no job can starve it."""
    w = CeleryWorker(
        log_path=run_dir / "celery-gateway.log",
        env=worker_env,
        queues="gateway.local",
        concurrency=2,
        name="gateway",
    )
    w.start()
    yield w
    w.stop()


# -- the browser -----------------------------------------------------------------------------------
# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
# between browser steps are still synchronous. (A file database, not an in-memory one:
# tests/testenv.py gives every run its own sqlite file.)
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    # The test gateway's routes (tests/functional/networking) resolve to loopback, as DNS would send
    # them to the gateway.
    "--host-resolver-rules=MAP *.apps.example.test 127.0.0.1",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the session (one Playwright per thread is all it allows)."""
    chromium = need_binary("chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
        yield b
        b.close()
