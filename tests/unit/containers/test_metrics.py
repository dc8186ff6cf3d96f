"""Metrics: the poll's arithmetic and its cost, and the API that serves the figures.

Proxmox is stubbed at the client boundary (ProxmoxClient) to count calls and reach the
branches; tests/functional/containers/test_metrics_e2e.py runs the same paths against
the simulator over HTTPS.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from containers.metrics.models import ContainerSample
from containers.metrics.poll import Previous, build_samples, metrics_poll_site, rates
from containers.models import Container
from containers.proxmox import ProxmoxClient, ProxmoxUnavailable
from tests.api_contract import check
from tests.factories import UserFactory, make_access_world, make_containers, make_site

pytestmark = pytest.mark.django_db

T0 = timezone.now().replace(microsecond=0)


def entry(vmid: int, **over: Any) -> dict[str, Any]:
    """One CT as /cluster/resources lists it."""
    return {
        "id": f"lxc/{vmid}",
        "type": "lxc",
        "vmid": vmid,
        "node": "pve1" if vmid % 2 else "pve2",
        "status": "running",
        "cpu": 0.25,
        "maxcpu": 2,
        "mem": 300 << 20,
        "maxmem": 512 << 20,
        "disk": 1 << 30,
        "maxdisk": 8 << 30,
        "uptime": 1000,
        "netin": 1_000_000,
        "netout": 500_000,
        "diskread": 2_000_000,
        "diskwrite": 3_000_000,
        **over,
    }


class CountingResources:
    """The client boundary: /cluster/resources answers `entries`, and every call counts."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, entries: list[dict[str, Any]]) -> None:
        self.entries = entries
        self.calls: list[str] = []
        outer = self

        def cluster_resources(client: ProxmoxClient, type: str = "vm") -> list[dict[str, Any]]:
            outer.calls.append(f"resources?type={type}")
            return list(outer.entries)

        def refuse(name: str) -> Any:
            def call(*args: Any, **kwargs: Any) -> Any:
                outer.calls.append(name)
                raise AssertionError(f"the poll must not call {name}")

            return call

        monkeypatch.setattr(ProxmoxClient, "cluster_resources", cluster_resources)
        for name in ("container_status", "lxc_list", "container_config", "rrddata"):
            monkeypatch.setattr(ProxmoxClient, name, refuse(name))


# -- arithmetic ------------------------------------------------------------------------


def test_rates_are_counter_growth_per_second() -> None:
    prev = Previous(T0, 1000, (1000, 2000, 0, 10))
    later = T0 + timedelta(seconds=30)
    assert rates((31_000, 2000, 300, 10), 1030, later, prev) == [1000.0, 0.0, 10.0, 0.0]
    assert rates((31_000, 2000, 300, 10), 1030, later, None) == [None] * 4  # first sample
    # A restart in between (uptime went down, or a counter did): unknown, never negative.
    assert rates((31_000, 2000, 300, 10), 5, later, prev) == [None] * 4
    assert rates((500, 2500, 300, 10), 1030, later, prev) == [None, 500 / 30, 10.0, 0.0]
    assert rates((1, 1, 1, 1), 1030, T0, prev) == [None] * 4  # no time passed


def test_build_samples_keeps_only_live_containers_with_figures() -> None:
    entries = [
        entry(101),
        entry(102, status="stopped", cpu=0, mem=0, netin=0, uptime=0),
        {"id": "lxc/103", "type": "lxc", "vmid": 103, "status": "unknown", "maxmem": 1},
        entry(104, type="qemu", id="qemu/104"),
        entry(999),  # another tenant's CT: not the portal's
    ]
    containers = {101: 1, 102: 2, 103: 3, 104: 4}
    prev = {1: Previous(T0, 970, (970_000, 490_000, 2_000_000, 2_970_000))}
    out = {
        s.container_id: s
        for s in build_samples(entries, containers, prev, T0 + timedelta(seconds=30))
    }
    assert sorted(out) == [1, 2]
    one = out[1]
    assert (one.cpu, one.cpus, one.mem, one.maxmem, one.pve_status) == (
        0.25,
        2.0,
        300 << 20,
        512 << 20,
        "running",
    )
    assert (one.netin_rate, one.netout_rate, one.diskread_rate, one.diskwrite_rate) == (
        1000.0,
        1000 / 3,
        0.0,
        1000.0,
    )
    assert out[2].pve_status == "stopped" and out[2].netin_rate == 0.0


# -- the poll's cost ------------------------------------------------------------------


def test_a_poll_of_200_containers_is_one_api_call_and_one_bulk_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    site = make_site(None)
    made = make_containers(site, 200)
    stub = CountingResources(monkeypatch, [entry(c.vmid) for c in made])
    with CaptureQueriesContext(connection) as queries:
        result = metrics_poll_site(site=site, now=T0)
    assert stub.calls == ["resources?type=vm"]
    assert result.written == 200 and ContainerSample.objects.count() == 200
    sql = [q["sql"].lstrip().upper() for q in queries.captured_queries]
    inserts = [s for s in sql if s.startswith("INSERT")]
    # One bulk_create: one statement on PostgreSQL, SQLite's variable limit splits it.
    batch = connection.ops.bulk_batch_size([f for f in ContainerSample._meta.concrete_fields], made)
    assert len(inserts) == math.ceil(200 / batch)
    assert all("ON CONFLICT" in s for s in inserts)
    assert not [s for s in sql if s.startswith(("UPDATE", "DELETE"))]
    reads = [s for s in sql if s.startswith("SELECT")]
    # nodes, containers, previous samples, active alerts: whatever the count
    assert len(reads) == 4

    # The next poll, 30 s on, turns the counters into rates and rewrites the same rows.
    stub.entries = [entry(c.vmid, netin=1_000_000 + 30 * c.vmid, uptime=1030) for c in made]
    metrics_poll_site(site=site, now=T0 + timedelta(seconds=30))
    assert stub.calls == ["resources?type=vm"] * 2
    assert ContainerSample.objects.count() == 200
    sample = ContainerSample.objects.get(container=made[7])
    assert sample.netin_rate == pytest.approx(made[7].vmid) and sample.netout_rate == 0.0
    assert sample.sampled_at == T0 + timedelta(seconds=30)


def test_a_down_node_is_passed_over_for_the_next(monkeypatch: pytest.MonkeyPatch) -> None:
    site = make_site(None)
    (c,) = make_containers(site, 1)
    asked: list[str] = []

    def cluster_resources(client: ProxmoxClient, type: str = "vm") -> list[dict[str, Any]]:
        asked.append(client.endpoint)
        if len(asked) == 1:
            raise ProxmoxUnavailable("595 Connection refused", unreachable=True)
        return [entry(c.vmid)]

    monkeypatch.setattr(ProxmoxClient, "cluster_resources", cluster_resources)
    assert metrics_poll_site(site=site, now=T0).written == 1
    assert len(asked) == 2


# -- the API --------------------------------------------------------------------------


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    cache.clear()
    w = make_access_world()
    calls: list[tuple[str, Any]] = []

    def rrddata(client: ProxmoxClient, node: str, vmid: int, *, timeframe: str, cf: str) -> Any:
        calls.append(("rrddata", (node, vmid, timeframe, cf)))
        return [{"time": 60}, {"time": 120, "cpu": 0.5, "netin": 10.0}]

    def container_status(client: ProxmoxClient, node: str, vmid: int) -> Any:
        calls.append(("status", (node, vmid)))
        return {"swap": 1 << 20, "maxswap": 512 << 20, "cpu": 0.1}

    monkeypatch.setattr(ProxmoxClient, "rrddata", rrddata)
    monkeypatch.setattr(ProxmoxClient, "container_status", container_status)
    w["calls"] = calls
    w["container"] = Container.objects.get(hostname="app")
    return w


def login(username: str) -> Client:
    from django.contrib.auth.models import User

    client = Client()
    client.force_login(User.objects.get(username=username))
    return client


def url(c: Container, query: str = "") -> str:
    return f"/api/v1/containers/{c.pk}/metrics/{query}"


@pytest.mark.parametrize("who", ["owner", "collab", "staff"])
def test_history_for_owners_collaborators_and_staff(world: dict[str, Any], who: str) -> None:
    c = world["container"]
    ContainerSample.objects.create(container=c, sampled_at=T0, cpu=0.5, cpus=2, mem=100)
    body = check(login(who).get(url(c, "?timeframe=day&cf=MAX"))).json()
    assert (body["timeframe"], body["cf"], body["step"]) == ("day", "MAX", 60)
    assert body["points"] == [{"time": 60}, {"time": 120, "cpu": 0.5, "netin": 10.0}]
    assert body["latest"]["cpu"] == 0.5 and body["latest"]["swap"] == 1 << 20
    assert body["latest"]["maxswap"] == 512 << 20
    assert ("rrddata", (c.node.name, c.vmid, "day", "MAX")) in world["calls"]


@pytest.mark.parametrize("who", ["other", "bystander"])
def test_history_is_not_found_for_others(world: dict[str, Any], who: str) -> None:
    response = check(login(who).get(url(world["container"])))
    assert response.status_code == 404 and world["calls"] == []


def test_history_refuses_bad_parameters(world: dict[str, Any]) -> None:
    client = login("owner")
    for query in ("?timeframe=decade", "?cf=MIN", "?timeframe=HOUR"):
        response = check(client.get(url(world["container"], query)))
        assert response.status_code == 400, query
        assert response.json()["code"] == "invalid"
    assert world["calls"] == []


def test_history_and_swap_are_cached_briefly(world: dict[str, Any]) -> None:
    client = login("owner")
    c = world["container"]
    first = check(client.get(url(c))).json()
    assert (first["timeframe"], first["cf"]) == ("hour", "AVERAGE")
    assert first["latest"]["cpu"] is None  # no poll yet; swap is live
    for _ in range(3):
        client.get(url(c))
    assert [k for k, _ in world["calls"]] == ["rrddata", "status"]
    client.get(url(c, "?timeframe=week"))
    assert [k for k, _ in world["calls"]] == ["rrddata", "status", "rrddata"]


def test_history_answers_503_when_proxmox_does_not(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(*args: Any, **kwargs: Any) -> Any:
        raise ProxmoxUnavailable("Proxmox is unavailable (595 Connection refused)")

    monkeypatch.setattr(ProxmoxClient, "rrddata", down)
    response = check(login("owner").get(url(world["container"])))
    assert response.status_code == 503


def test_the_container_object_carries_the_latest_figures_without_more_queries() -> None:
    site = make_site(None)
    made = make_containers(site, 30)
    staff = UserFactory(is_staff=True)
    client = Client()
    client.force_login(staff)
    ContainerSample.objects.bulk_create(
        ContainerSample(container=c, sampled_at=T0, cpu=i / 100, cpus=2, mem=(30 - i) << 20)
        for i, c in enumerate(made[:20])
    )
    with CaptureQueriesContext(connection) as small:
        check(client.get("/api/v1/containers/?page_size=5"))
    with CaptureQueriesContext(connection) as big:
        body = check(client.get("/api/v1/containers/?page_size=30")).json()
    assert len(big) == len(small)
    by_name = {c["hostname"]: c for c in body["results"]}
    assert by_name[made[3].hostname]["metrics"]["cpu"] == 0.03
    assert by_name[made[25].hostname]["metrics"] is None
    top = check(client.get("/api/v1/containers/?ordering=-cpu&page_size=3")).json()["results"]
    assert [c["hostname"] for c in top] == [made[i].hostname for i in (19, 18, 17)]
    by_mem = check(client.get("/api/v1/containers/?ordering=-mem&page_size=2")).json()["results"]
    assert [c["hostname"] for c in by_mem] == [made[0].hostname, made[1].hostname]
    # Without a sample a container sorts last when descending, on every database.
    last = check(client.get("/api/v1/containers/?ordering=-cpu&page_size=30")).json()["results"]
    assert last[-1]["metrics"] is None and last[19]["metrics"] is not None
