"""/readyz and /metrics against the real components: a private Redis stopped under the
check, the simulator's node faults seen through the beat probe, a worker running real
jobs (and the gateway worker applying), and gunicorn serving both endpoints."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from containers import services
from containers.models import Container, JobStatus
from containers.tasks import probe_nodes
from portal.procs import RedisServer, free_port
from tests.conftest import database_url, gunicorn, need_binary, wait_job
from tests.factories import UserFactory
from tests.testenv import TEST_ENV

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def sample(metrics: dict[str, Any], family: str, name: str | None = None, **labels: str) -> float:
    """A sample's value (0 when absent: a count that has not started yet)."""
    for s in metrics[family].samples:
        if (name is None or s.name == name) and all(
            s.labels.get(k) == v for k, v in labels.items()
        ):
            return float(s.value)
    return 0.0


def scrape(client: Any) -> dict[str, Any]:
    response = client.get("/metrics")
    assert response.status_code == 200
    return families(response.content.decode())


def test_readyz_fails_on_the_broker_when_redis_stops(client, settings, tmp_path: Path) -> None:
    need_binary("redis-server")
    server = RedisServer(tmp_path / "redis").start()
    settings.CELERY_BROKER_URL = server.url
    settings.READYZ_BROKER_TIMEOUT = 1.0
    try:
        response = client.get("/readyz")
        assert response.status_code == 200, response.json()
        assert response.json()["checks"]["broker"]["state"] == "ok"
    finally:
        server.stop()

    started = time.monotonic()
    response = client.get("/readyz")
    took = time.monotonic() - started

    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["broker"]
    assert body["checks"]["broker"]["state"] == "failed"
    assert "Connection" in body["checks"]["broker"]["detail"]
    assert body["checks"]["database"]["ok"] is True
    assert took < 3, f"readyz took {took:.2f} s with the broker down"


def test_readyz_follows_the_probe_when_a_node_goes_offline(
    cluster, sim, client, settings, redis_url
) -> None:
    settings.CELERY_BROKER_URL = redis_url
    probe_nodes()  # every node answers: probed, active
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()
    pve1 = response.json()["checks"]["nodes"]["local/pve1"]
    assert pve1["state"] == "active" and pve1["age"] < 5

    sim.admin.set_node_offline("pve1")
    probe_nodes()  # one beat tick in this process: the readiness check never calls Proxmox
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["node local/pve1"]
    assert body["checks"]["nodes"]["local/pve1"]["state"] == "offline"
    assert "595 Connection refused" in body["checks"]["nodes"]["local/pve1"]["detail"]
    assert body["checks"]["nodes"]["local/pve2"]["ok"] is True

    sim.admin.reset_faults()
    probe_nodes()
    assert client.get("/readyz").status_code == 200


def test_job_metrics_move_as_real_jobs_run(cluster, worker, client, settings, redis_url) -> None:
    settings.CELERY_BROKER_URL = redis_url
    before = scrape(client)
    create_ok = sample(before, "portal_jobs_finished", kind="create", outcome="succeeded")
    timed = sample(
        before,
        "portal_job_duration_seconds",
        "portal_job_duration_seconds_bucket",
        kind="create",
        le="+Inf",
    )

    owner = UserFactory()
    job = services.container_create(
        owner=owner, hostname="watched", template=cluster.templates.get()
    )
    job = wait_job(job.pk)
    assert job.status == JobStatus.SUCCEEDED, job.error
    container = Container.objects.select_related("node").get(pk=job.container_id)
    stop = wait_job(services.container_stop(container=container, actor=owner).pk)
    assert stop.status == JobStatus.SUCCEEDED, stop.error

    after = scrape(client)
    assert (
        sample(after, "portal_jobs_finished", kind="create", outcome="succeeded") == create_ok + 1
    )
    assert sample(after, "portal_jobs_finished", kind="stop", outcome="succeeded") >= 1
    assert (
        sample(
            after,
            "portal_job_duration_seconds",
            "portal_job_duration_seconds_bucket",
            kind="create",
            le="+Inf",
        )
        == timed + 1
    )
    assert (
        sample(after, "portal_containers", site="local", node=container.node.name, status="stopped")
        == 1
    )
    # The create waited for the gateway worker's apply (GATEWAY_JOB_WAIT in the workers).
    assert sample(after, "portal_gateway_last_success_timestamp_seconds", site="local") > 0
    assert sample(after, "portal_gateway_pending_changes", site="local") == 0
    gateway = client.get("/readyz").json()["checks"]["gateways"]["local"]
    assert gateway["state"] == "up to date" and gateway["age"] < 120


def test_gunicorn_serves_readyz_and_metrics_to_a_token_only(
    cluster, redis_url: str, run_dir: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        **TEST_ENV,
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": redis_url,
        "ALLOWED_HOSTS": "127.0.0.1",
        "WEB_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "1",
        "METRICS_TOKEN": "scrape-me",
        "METRICS_ALLOW": "",  # no address is trusted: the token only
    }
    with gunicorn(env, port=port, log_path=run_dir / f"gunicorn-metrics-{port}.log") as url:
        assert requests.get(f"{url}/healthz", timeout=10).status_code == 200
        ready = requests.get(f"{url}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        assert requests.get(f"{url}/metrics", timeout=10).status_code == 403
        refused = requests.get(
            f"{url}/metrics", headers={"Authorization": "Bearer wrong"}, timeout=10
        )
        assert refused.status_code == 403
        answer = requests.get(
            f"{url}/metrics", headers={"Authorization": "Bearer scrape-me"}, timeout=10
        )
        assert answer.status_code == 200
    metrics = families(answer.text)
    assert sample(metrics, "portal_node_up", site="local", node="pve1") == 1
    assert "portal_jobs_finished" in metrics and "portal_job_duration_seconds" in metrics
