"""A node's capacity and load: the figures read from a node status, the probe's one UPDATE,
the texts the admin shows, and a node list whose query count does not grow with the
nodes and containers. Through the simulator: tests/functional/networking/test_node_capacity_e2e.py."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from auth.models import AuditEntry
from containers import health
from containers.models import Container, ContainerStatus
from containers.node_load import Load, record_probe, status_figures
from networking.admin_capacity import (
    committed_cores_text,
    committed_memory_text,
    cpu_text,
    state_text,
    summary_text,
)
from networking.models import Node, NodeState, Site
from portal import units
from tests.factories import UserFactory, make_site

GIB = 1 << 30
MIB = 1 << 20
NODES = "/admin/networking/node/"
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)

# What Proxmox answers to GET /nodes/{node}/status (the parts the portal reads).
STATUS = {
    "cpu": 0.234,
    "cpuinfo": {"cpus": 8, "cores": 4, "sockets": 1},
    "loadavg": ["3.74", "3.37", "3.00"],
    "memory": {"total": 64 * GIB, "used": int(12.5 * GIB), "free": int(51.5 * GIB)},
    "rootfs": {"total": 94 * GIB, "used": int(7.5 * GIB), "avail": int(86.5 * GIB)},
    "uptime": 86400,
}


def load(**over: Any) -> Load:
    fields: dict[str, Any] = {
        "cpus": 8,
        "cpu": 0.234,
        "load": (3.74, 3.37, 3.0),
        "memory_used": int(12.5 * GIB),
        "memory_total": 64 * GIB,
        "disk_used": int(7.5 * GIB),
        "disk_total": 94 * GIB,
        "containers": 3,
        "running": 2,
        "committed_cores": 12,
        "committed_memory": 48 * GIB,
        "read_at": NOW - timedelta(seconds=12),
    }
    return Load(**{**fields, **over})


# -- units ---------------------------------------------------------------------------------
def test_units_read_as_people_write_them() -> None:
    assert units.used_of(int(12.3 * GIB), int(62.8 * GIB)) == "12.3 / 62.8 GiB"
    assert units.used_of(300 * MIB, 2 * GIB) == "0.3 / 2.0 GiB"
    assert units.used_of(512 * MIB, 1000 * MIB) == "512.0 / 1000.0 MiB"
    assert units.used_of(3 * 1024 * GIB, 4 * 1024 * GIB) == "3.0 / 4.0 TiB"
    assert units.used_of(None, 94 * GIB) == "\N{EN DASH} / 94.0 GiB"
    assert units.used_of(5, 10) == "5 / 10 B"
    assert units.used_of(1, None) == "\N{EN DASH}"
    assert units.iec_bytes(1536 * MIB) == "1.50 GiB" and units.iec_bytes(None) == "\N{EN DASH}"
    assert units.percent(0.234) == "23.4 %"
    assert units.ratio(1.5) == "1.50\N{MULTIPLICATION SIGN}" and units.ratio(None) == "\N{EN DASH}"
    assert units.loads(3.74, 3.366, 3) == "3.74 / 3.37 / 3.00"
    assert units.loads(None, 1, 2) == "\N{EN DASH} / 1.00 / 2.00"


def test_ages_in_their_largest_whole_unit() -> None:
    ago = {s: units.ago(NOW - timedelta(seconds=s), NOW) for s in (0, 12, 59, 60, 3599, 7200)}
    assert ago == {
        0: "0 s ago",
        12: "12 s ago",
        59: "59 s ago",
        60: "1 min ago",
        3599: "59 min ago",
        7200: "2 h ago",
    }
    assert units.ago(NOW - timedelta(days=3, hours=5), NOW) == "3 d ago"
    assert units.ago(NOW + timedelta(seconds=5), NOW) == "0 s ago"  # a clock a little ahead
    assert units.ago(None, NOW) == "never"


# -- the texts of the admin ----------------------------------------------------------------
def test_the_admin_texts_of_a_load() -> None:
    assert cpu_text(load()) == "23.4 % of 8 CPUs"
    assert committed_cores_text(load()) == "12 / 8 cores (1.50\N{MULTIPLICATION SIGN})"
    assert committed_memory_text(load()) == "48.0 / 64.0 GiB (0.75\N{MULTIPLICATION SIGN})"
    assert summary_text(load(), NOW) == (
        "CPU 23.4 % of 8 CPUs, load 3.74 / 3.37 / 3.00; memory 12.5 / 64.0 GiB; "
        "disk 7.5 / 94.0 GiB; 3 (2 running) containers committing 12 / 8 cores "
        "(1.50\N{MULTIPLICATION SIGN}) and 48.0 / 64.0 GiB (0.75\N{MULTIPLICATION SIGN}) "
        "of memory; read 12 s ago"
    )


def test_a_node_never_read_shows_dashes_and_what_is_committed() -> None:
    unread = load(
        cpus=None,
        cpu=None,
        load=(None, None, None),
        memory_used=None,
        memory_total=None,
        disk_used=None,
        disk_total=None,
        read_at=None,
    )
    assert cpu_text(unread) == "\N{EN DASH}"
    assert committed_cores_text(unread) == "12 cores"
    assert committed_memory_text(unread) == "48.0 GiB"
    assert summary_text(unread, NOW).endswith("of memory; read never")


@pytest.mark.django_db
def test_an_offline_node_says_for_how_long_and_why() -> None:
    node = make_site(None).nodes.get(name="pve1")
    assert state_text(node, NOW) == "Active"
    node.state, node.offline_since = NodeState.OFFLINE, NOW - timedelta(minutes=3)
    node.offline_reason = "595 Connection refused"
    assert state_text(node, NOW) == "Offline for 3 min: 595 Connection refused"


# -- reading a node status -----------------------------------------------------------------
def test_status_figures_from_a_node_status() -> None:
    assert status_figures(STATUS) == {
        "max_cpu": 8,
        "cpu_load": 0.234,
        "load_1": 3.74,
        "load_5": 3.37,
        "load_15": 3.0,
        "max_memory": 64 * GIB,
        "used_memory": int(12.5 * GIB),
        "max_disk": 94 * GIB,
        "used_disk": int(7.5 * GIB),
    }


@pytest.mark.parametrize(
    "loadavg", [None, "3.74 3.37 3.00", ["1", "2"], ["x", "nan", "-1"], [{"a": 1}, None, "1e999"]]
)
def test_a_strange_loadavg_is_no_figure(loadavg: Any) -> None:
    figures = status_figures({**STATUS, "loadavg": loadavg})
    assert (figures["load_1"], figures["load_5"], figures["load_15"]) == (None, None, None)
    assert figures["max_cpu"] == 8  # the rest is still read


def test_an_empty_status_gives_no_figures() -> None:
    assert set(status_figures({}).values()) == {None}


# -- the probe -----------------------------------------------------------------------------
@pytest.mark.django_db
def test_the_probe_keeps_the_figures_in_its_one_update_without_an_audit_entry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    node = make_site(None).nodes.get(name="pve1")
    monkeypatch.setattr(health, "ask", lambda node: (None, STATUS))
    with CaptureQueriesContext(connection) as ctx:
        assert health.node_check(node=node) == NodeState.ACTIVE
    writes = [q["sql"] for q in ctx.captured_queries if q["sql"].startswith("UPDATE")]
    recording = [sql for sql in writes if '"probed_at"' in sql]
    assert len(recording) == 1 and '"load_15"' in recording[0], writes
    assert len(writes) <= 2, writes  # and node_mark_active's conditional one
    node.refresh_from_db()
    assert (node.max_cpu, node.cpu_load, node.load_1, node.load_5, node.load_15) == (
        8,
        0.234,
        3.74,
        3.37,
        3.0,
    )
    assert (node.used_memory, node.max_disk) == (int(12.5 * GIB), 94 * GIB)
    assert node.capacity_updated_at == node.probed_at is not None
    assert not AuditEntry.objects.exists()


@pytest.mark.django_db
def test_the_probe_never_replaces_figures_read_later_nor_keeps_none_when_down() -> None:
    node = make_site(None).nodes.get(name="pve1")
    record_probe(node=node, at=NOW, status=STATUS)
    # An earlier reading that arrives late (a slow probe): the look counts, not its figures.
    record_probe(node=node, at=NOW - timedelta(seconds=5), status={**STATUS, "cpu": 0.9})
    node.refresh_from_db()
    assert node.cpu_load == 0.234 and node.capacity_updated_at == NOW
    assert node.probed_at == NOW - timedelta(seconds=5)
    # A node that did not answer: the look only; the figures stay as they were, aging.
    record_probe(node=node, at=NOW + timedelta(seconds=30), status=None)
    node.refresh_from_db()
    assert node.probed_at == NOW + timedelta(seconds=30)
    assert node.capacity_updated_at == NOW and node.load_1 == 3.74
    record_probe(node=node, at=NOW + timedelta(seconds=60), status={**STATUS, "cpu": 0.5})
    node.refresh_from_db()
    assert node.cpu_load == 0.5 and node.capacity_updated_at == NOW + timedelta(seconds=60)


# -- the admin's node list -----------------------------------------------------------------
def add_nodes(site: Site, count: int, *, first_slot: int = 0) -> list[Node]:
    return [
        Node.objects.create(
            site=site,
            name=f"n{first_slot + i}",
            slot=first_slot + i,
            api_url="https://127.0.0.1:8006",
            token_id="portal@pve!portal",
            token_secret="secret",
            **status_figures(STATUS),
            capacity_updated_at=timezone.now(),
        )
        for i in range(count)
    ]


def add_containers(node: Node, statuses: list[str], *, cores: int, memory_mib: int) -> None:
    owner = UserFactory()
    template = node.site.templates.get()
    base = 1000 + 10 * node.slot + 1000 * node.site_id
    Container.objects.bulk_create(
        Container(
            site=node.site,
            node=node,
            vmid=base + i,
            hostname=f"c{base + i}",
            owner=owner,
            template=template,
            cores=cores,
            memory_mib=memory_mib,
            swap_mib=512,
            disk_gib=8,
            # From the VMID, unique in the site (ids from a database sequence may pass 255).
            ip=f"10.{(base + i) >> 16 & 255}.{(base + i) >> 8 & 255}.{(base + i) & 255}",
            mac=f"bc:24:11:{(base + i) >> 16 & 255:02x}:{(base + i) >> 8 & 255:02x}:{(base + i) & 255:02x}",
            status=status,
        )
        for i, status in enumerate(statuses)
    )


@pytest.fixture
def staff() -> Client:
    client = Client()
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def cells(page: str, node: Node) -> list[str]:
    """The changelist row of `node`, cell by cell, as text."""
    row = re.search(rf"<tr>(?:(?!</tr>).)*?/node/{node.pk}/change/.*?</tr>", page, re.S)
    assert row, f"no row for {node}"
    found = re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row[0], re.S)
    return [re.sub(r"<[^>]+>", "", cell).strip() for cell in found]


@pytest.mark.django_db
def test_the_node_list_and_page_show_the_figures_and_commitments(staff: Client) -> None:
    site = make_site(None, node_names=())
    (node,) = add_nodes(site, 1)
    running, stopped, deleted = ContainerStatus.RUNNING, ContainerStatus.STOPPED, "deleted"
    add_containers(node, [running, running, stopped, deleted], cores=4, memory_mib=16384)
    page = staff.get(NODES).content.decode()
    row = cells(page, node)
    x = "\N{MULTIPLICATION SIGN}"
    assert re.fullmatch(r"\d s ago", row[-1]), row  # the figures' age
    assert row[1:-1] == [
        "n0",
        "Local",
        "0",
        "Active",
        "23.4 % of 8 CPUs",
        "3.74 / 3.37 / 3.00",
        "12.5 / 64.0 GiB",
        "7.5 / 94.0 GiB",
        "3 (2 running)",  # the deleted one is history
        f"12 / 8 cores (1.50{x})",
        f"48.0 / 64.0 GiB (0.75{x})",
    ], row

    change = staff.get(f"{NODES}{node.pk}/change/").content.decode()
    for text in ("3.74 / 3.37 / 3.00", f"12 / 8 cores (1.50{x})", "Capacity and load"):
        assert text in change

    two = add_nodes(site, 1, first_slot=1)[0]
    add_containers(two, [running], cores=2, memory_mib=1024)
    shown = staff.get(f"/admin/networking/site/{site.pk}/change/").content.decode()
    assert (
        f"CPU 23.4 % of 16 CPUs, load 7.48 / 6.74 / 6.00; memory 25.0 / 128.0 GiB; "
        f"disk 15.0 / 188.0 GiB; 4 (3 running) containers committing 14 / 16 cores (0.88{x}) "
        f"and 49.0 / 128.0 GiB (0.38{x}) of memory; read " in shown
    ), shown


@pytest.mark.django_db
def test_the_node_list_costs_the_same_queries_for_2_and_20_nodes(staff: Client) -> None:
    site = make_site(None, node_names=())

    def grow_to(count: int) -> None:
        have = site.nodes.count()
        for node in add_nodes(site, count - have, first_slot=have):
            add_containers(node, ["running"] * 3 + ["stopped"], cores=2, memory_mib=2048)

    def list_queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            page = staff.get(NODES)
        assert page.status_code == 200
        assert page.content.decode().count("4 (3 running)") == site.nodes.count()
        return len(ctx)

    grow_to(2)
    few = list_queries()
    grow_to(20)
    assert list_queries() == few, "the node list's queries grow with its nodes"
