"""Metrics against the simulator over HTTPS: the poll's cost at 200 containers, rates
from counters the test controls, and history read through rrddata with PVE 9's steps.

The simulator is the session's: the test seeds its own guests (far above the portal's
VMIDs), counts the API calls with /_sim/requests/counts, and removes the guests after.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from containers.metrics.models import ContainerSample
from containers.metrics.poll import metrics_poll_site
from containers.models import Container
from tests.api_contract import check
from tests.factories import make_containers

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

FIRST = 61_000
COUNT = 200


@pytest.fixture
def fleet(cluster: Any, sim: Any) -> Iterator[list[Container]]:
    """200 running CTs on both nodes, each a live container of the portal's."""
    vmids = range(FIRST, FIRST + COUNT)
    sim.admin.remove_guests(vmids)  # a rerun in the same session starts clean
    sim.admin.create_foreign_guests(
        {"node": "pve1" if v % 2 else "pve2", "vmid": v, "status": "running", "memory": 512}
        for v in vmids
    )
    yield make_containers(cluster, COUNT, first_vmid=FIRST)
    sim.admin.remove_guests(vmids)


def mine(counts: dict[str, int]) -> dict[str, int]:
    """The calls of this test: the resources list, and any call naming one of its CTs."""
    return {
        path: n
        for path, n in counts.items()
        if path.startswith("GET /cluster/resources")
        or any(f"/lxc/{v}" in path for v in range(FIRST, FIRST + COUNT))
    }


def test_a_poll_of_200_containers_costs_one_call_and_its_rates_follow_the_counters(
    cluster: Any, sim: Any, fleet: list[Container]
) -> None:
    ct_a, ct_b = fleet[0], fleet[1]
    sim.admin.set_guest_usage(
        ct_a.vmid, values={"netin": 1_000_000, "netout": 0, "diskread": 10, "diskwrite": 20}
    )
    sim.admin.set_guest_usage(ct_b.vmid, values={"cpu": 0.9, "mem": 400 << 20})
    t0 = timezone.now()
    sim.admin.reset_request_counts()
    first = metrics_poll_site(site=cluster, now=t0)
    assert mine(sim.admin.request_counts()) == {"GET /cluster/resources": 1}
    assert first.written == COUNT
    assert ContainerSample.objects.filter(container__in=fleet).count() == COUNT
    a = ContainerSample.objects.get(container=ct_a)
    assert a.netin == 1_000_000 and a.netin_rate is None  # nothing to compare with yet
    b = ContainerSample.objects.get(container=ct_b)
    assert (b.cpu, b.mem, b.maxmem, b.pve_status) == (0.9, 400 << 20, 512 << 20, "running")
    assert b.cpus > 0  # the CT's cores (a foreign CT without `cores`: every host CPU)

    # The counters move by known amounts; the next poll is 30 s later by the portal's clock.
    sim.admin.set_guest_usage(
        ct_a.vmid,
        values={
            "netin": 1_000_000 + 30 * 5000,
            "netout": 30 * 100,
            "diskread": 10,
            "diskwrite": 20 + 30 * 4096,
        },
    )
    sim.admin.reset_request_counts()
    metrics_poll_site(site=cluster, now=t0 + timedelta(seconds=30))
    assert mine(sim.admin.request_counts()) == {"GET /cluster/resources": 1}
    a.refresh_from_db()
    assert (a.netin_rate, a.netout_rate, a.diskread_rate, a.diskwrite_rate) == (
        5000.0,
        100.0,
        0.0,
        4096.0,
    )
    # Every other CT got a rate from the simulator's own counters, never a negative one.
    others = ContainerSample.objects.filter(container__in=fleet[2:])
    assert all(s.netin_rate is not None and s.netin_rate >= 0 for s in others)

    # A restart resets Proxmox's counters: the rate is unknown, not negative.
    sim.admin.set_guest_status(ct_a.vmid, "stopped")
    sim.admin.set_guest_status(ct_a.vmid, "running")
    sim.admin.clear_guest_usage(ct_a.vmid)
    metrics_poll_site(site=cluster, now=t0 + timedelta(seconds=60))
    a.refresh_from_db()
    assert a.netin_rate is None and a.netin < 1_000_000


def test_history_reads_rrddata_with_pve9_steps_and_swap_live(
    cluster: Any, sim: Any, fleet: list[Container]
) -> None:
    from django.contrib.auth.models import User

    cache.clear()
    c = fleet[4]
    sim.admin.set_guest_usage(c.vmid, values={"swap": 7 << 20, "cpu": 0.5})
    metrics_poll_site(site=cluster)
    client = Client()
    client.force_login(User.objects.get(pk=c.owner_id))
    sim.admin.reset_request_counts()
    expected = {
        "hour": (60, 60),
        "day": (60, 1440),
        "week": (1800, 336),
        "month": (1800, 1440),
        "year": (21600, 1440),
    }
    for timeframe, (step, count) in expected.items():
        for cf in ("AVERAGE", "MAX"):
            body = check(
                client.get(f"/api/v1/containers/{c.pk}/metrics/?timeframe={timeframe}&cf={cf}")
            ).json()
            assert (body["step"], len(body["points"])) == (step, count), timeframe
            assert body["latest"]["swap"] == 7 << 20 and body["latest"]["cpu"] == 0.5
    # Cached: each range once, swap once, however often it is asked for.
    for _ in range(3):
        check(client.get(f"/api/v1/containers/{c.pk}/metrics/"))
    rrd = f"GET /nodes/{c.node.name}/lxc/{c.vmid}/rrddata"
    status = f"GET /nodes/{c.node.name}/lxc/{c.vmid}/status/current"
    assert mine(sim.admin.request_counts()) == {rrd: 10, status: 1}
    # Someone else's container is not found; a bad range is refused before Proxmox is asked.
    stranger = Client()
    stranger.force_login(User.objects.create(username="stranger"))
    assert check(stranger.get(f"/api/v1/containers/{c.pk}/metrics/")).status_code == 404
    assert (
        check(client.get(f"/api/v1/containers/{c.pk}/metrics/?timeframe=minute")).status_code == 400
    )
