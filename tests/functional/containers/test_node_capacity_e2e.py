"""A node's capacity and load through the real stack: the simulator over HTTPS is given a
busy guest, the beat probe reads each node's status (its one call per node) and keeps the
figures, and the admin's node list shows them (issue #16)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from auth.models import AuditEntry
from containers.tasks import probe_nodes
from networking.models import Node
from portal import units
from tests.factories import UserFactory, make_containers

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

GIB = 1 << 30
NODES = "/admin/networking/node/"
VMID = 90_001  # odd: pve1 (slot 1)
LATER = 600.0  # simulated seconds for the load averages to follow


@pytest.fixture
def staff() -> Client:
    client = Client()
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def frozen(sim: Any) -> Iterator[Any]:
    """The simulator's clock stands still (two reads of a status agree) and is put back."""
    sim.admin.remove_guests([VMID])
    sim.admin.set_manual_clock()
    moved = [0.0]

    def advance(seconds: float) -> None:
        sim.admin.advance_clock(seconds)
        moved[0] += seconds

    yield advance
    sim.admin.set_manual_clock(False)
    sim.admin.advance_clock(-moved[0])
    sim.admin.remove_guests([VMID])


def row(page: str, node: Node) -> list[str]:
    """The node's changelist row, cell by cell, as text."""
    found = re.search(rf"<tr>(?:(?!</tr>).)*?/node/{node.pk}/change/.*?</tr>", page, re.S)
    assert found, f"no row for {node}"
    cells = re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", found[0], re.S)
    return [re.sub(r"<[^>]+>", "", cell).strip() for cell in cells]


def test_the_probe_keeps_each_nodes_load_and_the_admin_shows_it(
    cluster: Any, sim: Any, frozen: Any, staff: Client
) -> None:
    # A container of the portal's on pve1, and pve2's neighbour, in the database...
    make_containers(cluster, 2, first_vmid=VMID)
    # ...and on pve1 a guest using 8 of the node's 16 CPUs and 6 GiB (no cores set: all 16).
    sim.admin.create_foreign_guest("pve1", VMID, memory=8192, status="running")
    sim.admin.set_guest_usage(VMID, values={"cpu": 0.5, "mem": 6 * GIB})
    pve1, pve2 = (cluster.nodes.get(name=n) for n in ("pve1", "pve2"))
    api = sim.proxmox()

    sim.admin.reset_request_counts()
    probe_nodes()
    counts = sim.admin.request_counts()
    assert counts == {"GET /nodes/pve1/status": 1, "GET /nodes/pve2/status": 1}, counts
    assert not AuditEntry.objects.filter(action__startswith="node.").exists()
    status = api.nodes("pve1").status.get()
    pve1.refresh_from_db()
    assert pve1.capacity_updated_at is not None and pve1.probed_at is not None
    assert (pve1.max_cpu, pve1.cpu_load) == (16, status["cpu"]) and pve1.cpu_load >= 0.5
    assert pve1.used_memory == status["memory"]["used"] >= 6 * GIB
    assert (pve1.max_memory, pve1.max_disk) == (64 * GIB, status["rootfs"]["total"])
    assert pve1.used_disk == status["rootfs"]["used"] > 0
    # The load averages have not caught up with a guest busy for no time yet.
    started = pve1.load_1
    assert started is not None and started < 8

    frozen(LATER)  # ten minutes on: the 1-minute figure has, the 15-minute one not yet
    probe_nodes()
    status = api.nodes("pve1").status.get()
    pve1.refresh_from_db()
    assert [pve1.load_1, pve1.load_5, pve1.load_15] == [float(x) for x in status["loadavg"]]
    assert pve1.load_1 >= 8 > pve1.load_15 > started
    pve2.refresh_from_db()
    assert pve2.load_1 is not None and pve2.load_1 < pve1.load_1 - 7

    page = staff.get(NODES).content.decode()
    x = "\N{MULTIPLICATION SIGN}"
    shown = row(page, pve1)
    assert re.fullmatch(r"\d+ s ago", shown[12]), shown  # by the portal's clock, which runs
    assert shown[1:12] == [
        "pve1",
        "Local",
        "1",
        "Active",
        f"{units.percent(pve1.cpu_load)} of 16 CPUs",
        " / ".join(status["loadavg"]),  # as Proxmox gave them
        units.used_of(status["memory"]["used"], 64 * GIB),
        units.used_of(status["rootfs"]["used"], status["rootfs"]["total"]),
        "1 (1 running)",
        f"2 / 16 cores (0.12{x})",
        f"0.5 / 64.0 GiB (0.01{x})",
    ], shown
    assert row(page, pve2)[9:12] == ["1 (1 running)", f"2 / 16 cores (0.12{x})", shown[11]]
    change = staff.get(f"{NODES}{pve1.pk}/change/").content.decode()
    assert " / ".join(status["loadavg"]) in change
