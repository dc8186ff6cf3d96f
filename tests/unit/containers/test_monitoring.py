"""/readyz and /metrics from database rows (no component: the broker is a folder or a
closed loopback port). tests/functional/containers/test_monitoring_e2e.py does the same
against a real Redis, the simulator and a worker running real jobs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from containers.models import Job, JobStatus
from networking.gateway.apply import ApplyRun, _record
from networking.models import ConfigRevision, GatewayState, Node, NodeState, RevisionStatus
from networking.services import request_apply
from tests.factories import UserFactory, make_site

pytestmark = pytest.mark.django_db

CLOSED_PORT_BROKER = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def scrape(client: Any, **extra: Any) -> dict[str, Any]:
    """{metric name: family} of one /metrics answer, parsed by Prometheus' own parser."""
    response = client.get("/metrics", **extra)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return {f.name: f for f in text_string_to_metric_families(response.content.decode())}


def value(family: Any, name: str | None = None, **labels: str) -> float | None:
    for sample in family.samples:
        if (name is None or sample.name == name) and all(
            sample.labels.get(k) == v for k, v in labels.items()
        ):
            return float(sample.value)
    return None


def finished_job(kind: str, status: str, seconds: float, *, ago: float = 10.0) -> Job:
    end = timezone.now() - timedelta(seconds=ago)
    return Job.objects.create(
        kind=kind, status=status, started_at=end - timedelta(seconds=seconds), finished_at=end
    )


# -- /readyz ---------------------------------------------------------------------------------
def test_readyz_is_200_with_every_check_and_its_age(client) -> None:
    site = make_site(None)
    Node.objects.filter(site=site).update(probed_at=timezone.now() - timedelta(seconds=7))

    response = client.get("/readyz")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["ready"] is True and body["failed"] == []
    checks = body["checks"]
    assert checks["database"] == {"state": "ok", "ok": True, "age": 0.0, "detail": ""}
    assert checks["broker"]["ok"] is True  # the test settings' file broker
    assert set(checks["nodes"]) == {"local/pve1", "local/pve2"}
    assert checks["nodes"]["local/pve1"]["state"] == "active"
    assert 7 <= checks["nodes"]["local/pve1"]["age"] < 60
    assert checks["gateways"]["local"] == {
        "state": "up to date",
        "ok": True,
        "age": None,  # never applied, and nothing asked of it
        "detail": "",
    }


def test_readyz_is_503_when_the_broker_does_not_answer(client, settings) -> None:
    settings.CELERY_BROKER_URL = CLOSED_PORT_BROKER
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["broker"]
    assert body["checks"]["broker"]["state"] == "failed"
    assert "ConnectionError" in body["checks"]["broker"]["detail"]
    assert body["checks"]["database"]["ok"] is True


def test_readyz_names_an_offline_node_and_ignores_one_in_maintenance(client) -> None:
    site = make_site(None)
    since = timezone.now() - timedelta(minutes=3)
    Node.objects.filter(site=site, name="pve1").update(
        state=NodeState.OFFLINE,
        offline_since=since,
        offline_reason="595 Connection refused",
        probed_at=timezone.now(),
    )
    Node.objects.filter(site=site, name="pve2").update(state=NodeState.MAINTENANCE)

    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["node local/pve1"]
    pve1 = body["checks"]["nodes"]["local/pve1"]
    assert pve1["state"] == "offline" and pve1["ok"] is False
    assert "595 Connection refused" in pve1["detail"]
    assert body["checks"]["nodes"]["local/pve2"]["state"] == "maintenance"
    assert body["checks"]["nodes"]["local/pve2"]["ok"] is True


def test_a_change_waiting_too_long_makes_the_gateway_stale(client, settings) -> None:
    settings.READYZ_GATEWAY_STALE_AFTER = 60
    site = make_site(None)
    hour_ago = timezone.now() - timedelta(hours=1)
    ConfigRevision.objects.create(site=site, generation=1, status=RevisionStatus.APPLIED)
    ConfigRevision.objects.filter(site=site).update(created_at=hour_ago)
    ConfigRevision.objects.create(
        site=site,
        generation=2,
        status=RevisionStatus.FAILED,
        error="nginx: [emerg] bad",
        duration_ms=40,
    )
    GatewayState.objects.create(
        site=site, requested=2, applied=1, pending_since=timezone.now() - timedelta(minutes=5)
    )

    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["gateway local"]
    gateway = body["checks"]["gateways"]["local"]
    assert gateway["state"] == "stale" and gateway["ok"] is False
    assert 3590 < gateway["age"] < 3700  # since the last successful apply
    assert "1 change(s) waiting for 300 s" in gateway["detail"]
    assert "nginx: [emerg] bad" in gateway["detail"]

    # Within the threshold the same site is only applying, and ready.
    settings.READYZ_GATEWAY_STALE_AFTER = 600
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["gateways"]["local"]["state"] == "applying"


def test_pending_since_starts_at_the_first_waiting_change_and_ends_with_the_apply() -> None:
    site = make_site(None)
    request_apply(site, reason="one")
    first = GatewayState.objects.get(site=site).pending_since
    assert first is not None
    request_apply(site, reason="two")
    state = GatewayState.objects.get(site=site)
    assert state.pending_since == first and state.requested == 2

    run = ApplyRun(site=site, generation=1, paths=None, options=None, force=False)  # type: ignore[arg-type]
    _record(run, status=RevisionStatus.APPLIED)
    state = GatewayState.objects.get(site=site)
    assert state.applied == 1
    assert state.pending_since is not None and state.pending_since > first  # 2 still waits

    run = ApplyRun(site=site, generation=2, paths=None, options=None, force=False)  # type: ignore[arg-type]
    _record(run, status=RevisionStatus.FAILED, error="down")
    assert GatewayState.objects.get(site=site).pending_since is not None  # a failure waits on
    _record(run, status=RevisionStatus.APPLIED)
    assert GatewayState.objects.get(site=site).pending_since is None


def test_readyz_makes_a_fixed_number_of_queries(client, django_assert_num_queries) -> None:
    make_site(None)
    with django_assert_num_queries(3):  # SELECT 1, the nodes, the gateways
        assert client.get("/readyz").status_code == 200
    make_site(None, slug="other", node_names=("a", "b", "c"))
    with django_assert_num_queries(3):
        assert client.get("/readyz").status_code == 200


def test_the_probe_records_when_it_looked(monkeypatch) -> None:
    from containers import health

    site = make_site(None)
    node = site.nodes.get(name="pve1")
    monkeypatch.setattr(health, "ask", lambda node: ("595 Connection refused", None))
    health.node_check(node=node)
    node.refresh_from_db()
    assert node.state == NodeState.OFFLINE
    assert node.probed_at is not None and timezone.now() - node.probed_at < timedelta(seconds=5)


# -- /metrics --------------------------------------------------------------------------------
def test_metrics_counts_jobs_by_kind_and_outcome_with_durations(client, settings) -> None:
    settings.METRICS_JOB_WINDOW = 3600
    finished_job("create", JobStatus.SUCCEEDED, 3)
    finished_job("create", JobStatus.SUCCEEDED, 45)
    finished_job("create", JobStatus.FAILED, 0.5)
    finished_job("start", JobStatus.SUCCEEDED, 1.5)
    finished_job("start", JobStatus.SUCCEEDED, 1.5, ago=7200)  # outside the window
    Job.objects.create(kind="stop", status=JobStatus.CANCELLED, finished_at=timezone.now())
    Job.objects.create(kind="delete", status=JobStatus.QUEUED)

    metrics = scrape(client)

    finished = metrics["portal_jobs_finished"]
    assert value(finished, kind="create", outcome="succeeded") == 2
    assert value(finished, kind="create", outcome="failed") == 1
    assert value(finished, kind="start", outcome="succeeded") == 1
    assert value(finished, kind="stop", outcome="cancelled") == 1
    assert value(metrics["portal_jobs_active"], kind="delete", status="queued") == 1
    durations = metrics["portal_job_duration_seconds"]
    bucket = "portal_job_duration_seconds_bucket"
    assert value(durations, bucket, kind="create", le="1.0") == 1
    assert value(durations, bucket, kind="create", le="5.0") == 2
    assert value(durations, bucket, kind="create", le="30.0") == 2
    assert value(durations, bucket, kind="create", le="60.0") == 3
    assert value(durations, bucket, kind="create", le="+Inf") == 3
    assert value(durations, bucket, kind="start", le="2.0") == 1
    assert value(durations, bucket, kind="stop", le="+Inf") == 0  # never started: not timed
    assert value(metrics["portal_job_duration_seconds_gsum"], kind="create") == pytest.approx(48.5)
    assert value(metrics["portal_jobs_window_seconds"]) == 3600

    finished_job("create", JobStatus.SUCCEEDED, 12, ago=1)
    metrics = scrape(client)
    assert value(metrics["portal_jobs_finished"], kind="create", outcome="succeeded") == 3
    durations = metrics["portal_job_duration_seconds"]
    assert value(durations, bucket, kind="create", le="30.0") == 3


def test_metrics_show_containers_nodes_and_gateways(client) -> None:
    from containers import services

    site = make_site(None)
    owner = UserFactory()
    for name in ("a", "b", "c"):
        services.container_create(owner=owner, hostname=name, template=site.templates.get())
    Node.objects.filter(name="pve1").update(state=NodeState.OFFLINE, probed_at=timezone.now())
    revision = ConfigRevision.objects.create(
        site=site, generation=1, status=RevisionStatus.APPLIED, duration_ms=1250
    )
    GatewayState.objects.update_or_create(site=site, defaults={"requested": 3, "applied": 1})

    metrics = scrape(client)

    containers = metrics["portal_containers"]
    total = sum(s.value for s in containers.samples if s.labels["site"] == "local")
    assert total == 3
    assert {s.labels["status"] for s in containers.samples} == {"pending"}
    assert value(metrics["portal_node_up"], site="local", node="pve1") == 0
    assert value(metrics["portal_node_up"], site="local", node="pve2") == 1
    state = metrics["portal_node_state"]
    assert value(state, node="pve1", state="offline") == 1
    assert value(state, node="pve1", state="active") == 0
    assert value(metrics["portal_node_last_probe_timestamp_seconds"], node="pve1") is not None
    assert value(metrics["portal_node_last_probe_timestamp_seconds"], node="pve2") is None
    assert value(
        metrics["portal_gateway_last_success_timestamp_seconds"], site="local"
    ) == pytest.approx(revision.created_at.timestamp())
    assert value(metrics["portal_gateway_last_apply_duration_seconds"], site="local") == 1.25
    assert value(metrics["portal_gateway_last_apply_failed"], site="local") == 0
    assert value(metrics["portal_gateway_pending_changes"], site="local") == 2


def test_metrics_make_a_fixed_number_of_queries(client, django_assert_num_queries) -> None:
    make_site(None)
    finished_job("create", JobStatus.SUCCEEDED, 3)
    with django_assert_num_queries(7):
        scrape(client)
    make_site(None, slug="other", node_names=("a", "b", "c"))
    for kind in ("start", "stop", "resize"):
        finished_job(kind, JobStatus.FAILED, 2)
    with django_assert_num_queries(7):
        scrape(client)


# -- who may scrape ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("address", "allowed"),
    [("127.0.0.1", True), ("::1", True), ("10.0.0.7", False), ("192.0.2.1", False)],
)
def test_metrics_answer_the_allow_list_only(client, address, allowed) -> None:
    response = client.get("/metrics", REMOTE_ADDR=address)
    assert response.status_code == (200 if allowed else 403)


def test_metrics_allow_list_is_a_setting(client, settings) -> None:
    settings.METRICS_ALLOW = ["10.0.0.0/8"]
    assert client.get("/metrics", REMOTE_ADDR="10.0.0.7").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403


def test_a_proxied_request_is_not_taken_for_loopback(client) -> None:
    # Through a proxy on the same host REMOTE_ADDR is loopback whoever the client is.
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert response.status_code == 403


def test_metrics_answer_the_bearer_token_from_anywhere(client, settings) -> None:
    settings.METRICS_TOKEN = "s3cret-scrape-token"
    far = {"REMOTE_ADDR": "203.0.113.9"}
    assert client.get("/metrics", **far).status_code == 403
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope", **far)
    assert wrong.status_code == 403
    # A wrong token is refused even from an allowed address: it is a mistake worth seeing.
    assert (
        client.get(
            "/metrics", HTTP_AUTHORIZATION="Bearer nope", REMOTE_ADDR="127.0.0.1"
        ).status_code
        == 403
    )
    scrape(client, HTTP_AUTHORIZATION="Bearer s3cret-scrape-token", **far)


def test_no_token_is_set_so_a_bearer_header_gives_nothing(client, settings) -> None:
    settings.METRICS_TOKEN = ""
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer ", REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 403


def test_readyz_and_metrics_answer_get_only(client) -> None:
    assert client.post("/readyz").status_code == 405
    assert client.post("/metrics").status_code == 405


def test_probes_and_scrapes_are_not_redirected_to_https(client, settings) -> None:
    settings.SECURE_SSL_REDIRECT = True  # production: everything else goes to HTTPS
    assert client.get("/accounts/login/").status_code == 301
    for path in ("/healthz", "/readyz", "/metrics"):
        assert client.get(path).status_code == 200, path


# -- per-container gauges (METRICS_PER_CONTAINER) ----------------------------------------------
PER_CONTAINER_FAMILIES = {
    "portal_container_cpu_ratio",
    "portal_container_memory_bytes",
    "portal_container_memory_limit_bytes",
    "portal_container_disk_bytes",
    "portal_container_network_receive_bytes_per_second",
    "portal_container_network_transmit_bytes_per_second",
    "portal_container_disk_read_bytes_per_second",
    "portal_container_disk_write_bytes_per_second",
    "portal_container_sample_timestamp_seconds",
}


def sampled_world() -> tuple[Any, list[Any], Any]:
    """Four containers: a with every figure, b just sampled (no rates yet), c never
    sampled, d deleted (its sample left behind)."""
    from containers.metrics.models import ContainerSample
    from containers.models import Container, ContainerStatus
    from tests.factories import make_containers

    site = make_site(None)
    a, b, c, d = make_containers(site, 4)
    at = timezone.now().replace(microsecond=0) - timedelta(seconds=20)
    ContainerSample.objects.create(
        container=a,
        sampled_at=at,
        pve_status="running",
        cpu=0.375,
        cpus=2,
        mem=300 << 20,
        maxmem=512 << 20,
        disk=3 << 30,
        maxdisk=8 << 30,
        netin_rate=1500.0,
        netout_rate=250.5,
        diskread_rate=0.0,
        diskwrite_rate=4096.0,
    )
    ContainerSample.objects.create(container=b, sampled_at=at, cpu=0.0, mem=1 << 20, maxmem=1 << 29)
    ContainerSample.objects.create(container=d, sampled_at=at, cpu=0.9, mem=1, maxmem=2)
    Container.objects.filter(pk=d.pk).update(status=ContainerStatus.DELETED)
    return site, [a, b, c, d], at


def test_per_container_gauges_are_off_by_default(client, settings) -> None:
    assert settings.METRICS_PER_CONTAINER is False
    sampled_world()
    metrics = scrape(client)
    assert not {name for name in metrics if name.startswith("portal_container_")}
    assert "portal_containers" in metrics  # the counts by status are there as ever


def test_per_container_gauges_from_the_latest_samples(client, settings) -> None:
    settings.METRICS_PER_CONTAINER = True
    site, (a, b, c, d), at = sampled_world()
    metrics = scrape(client)
    assert set(metrics) >= PER_CONTAINER_FAMILIES
    labels = {"site": site.slug, "node": a.node.name, "vmid": str(a.vmid), "hostname": a.hostname}
    assert value(metrics["portal_container_cpu_ratio"], **labels) == 0.375
    assert value(metrics["portal_container_memory_bytes"], **labels) == 300 << 20
    assert value(metrics["portal_container_memory_limit_bytes"], **labels) == 512 << 20
    assert value(metrics["portal_container_disk_bytes"], **labels) == 3 << 30
    assert value(metrics["portal_container_network_receive_bytes_per_second"], **labels) == 1500
    assert value(metrics["portal_container_network_transmit_bytes_per_second"], **labels) == 250.5
    assert value(metrics["portal_container_disk_read_bytes_per_second"], **labels) == 0
    assert value(metrics["portal_container_disk_write_bytes_per_second"], **labels) == 4096
    assert value(metrics["portal_container_sample_timestamp_seconds"], **labels) == pytest.approx(
        at.timestamp()
    )
    for name in PER_CONTAINER_FAMILIES:
        series = metrics[name].samples
        assert {s.labels["hostname"] for s in series} <= {a.hostname, b.hostname}, name
        assert all(set(s.labels) == {"site", "node", "vmid", "hostname"} for s in series)
    # b has gauges but no rates yet (unknown is left out, not shown as 0); c has no
    # sample, and d is deleted: neither has a series.
    assert value(metrics["portal_container_memory_bytes"], hostname=b.hostname) == 1 << 20
    assert value(metrics["portal_container_cpu_ratio"], hostname=b.hostname) == 0
    for rate in ("network_receive", "disk_write"):
        family = metrics[f"portal_container_{rate}_bytes_per_second"]
        assert value(family, hostname=b.hostname) is None
    for name in PER_CONTAINER_FAMILIES:
        assert value(metrics[name], hostname=c.hostname) is None
        assert value(metrics[name], hostname=d.hostname) is None


def test_per_container_gauges_cost_one_query_whatever_the_count(
    client, settings, django_assert_num_queries
) -> None:
    from containers.metrics.models import ContainerSample
    from tests.factories import make_containers

    settings.METRICS_PER_CONTAINER = True
    sampled_world()
    with django_assert_num_queries(8):
        scrape(client)
    more = make_containers(make_site(None, slug="more"), 50, first_vmid=5000)
    ContainerSample.objects.bulk_create(
        ContainerSample(container=c, sampled_at=timezone.now(), cpu=0.1) for c in more
    )
    with django_assert_num_queries(8):
        metrics = scrape(client)
    assert len(metrics["portal_container_cpu_ratio"].samples) == 2 + 50
