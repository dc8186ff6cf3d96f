"""The status poll against the Wazuh double over HTTPS: one paged `GET /agents` per site
whatever the number of containers, one UPDATE of every agent row, agents missing from the
manager said and never deleted, the hypervisors' own agents read beside, and a manager
that fails changing nothing."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from containers import tasks
from containers.models import WazuhAgent, WazuhNodeAgent
from containers.wazuh.models import AgentStatus
from containers.wazuh.poll import POLL_FIELDS, wazuh_poll_all, wazuh_poll_site
from portal.celery import app
from tests.factories import make_containers, make_site
from tests.fixtures.wazuh_double import VERSION, WazuhDouble

from .arrange import watch

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def agent_updates(queries: CaptureQueriesContext) -> list[str]:
    table = WazuhAgent._meta.db_table
    return [q["sql"] for q in queries.captured_queries if q["sql"].startswith(f'UPDATE "{table}"')]


def tally(wazuh: WazuhDouble) -> dict[str, int]:
    """The manager's calls so far, by `METHOD path`."""
    calls: dict[str, int] = {}
    for call in wazuh.calls:
        calls[f"{call.method} {call.path}"] = calls.get(f"{call.method} {call.path}", 0) + 1
    return calls


def poll_costs(
    wazuh: WazuhDouble, count: int, first_vmid: int, *, node_agents: bool = False, polls: int = 1
) -> tuple[dict[str, int], float]:
    """A fresh site of `count` watched containers (with its nodes' own agents on the
    manager if asked), polled `polls` times with one client, as one beat worker would reuse
    it: the calls it cost (by path) and the slowest poll's seconds."""
    from containers.wazuh.client import WazuhClient

    wazuh.reset()
    site = make_site(None, slug=f"s{count}{'n' if node_agents else ''}")
    manager = wazuh.configure(site)
    watch(make_containers(site, count, first_vmid=first_vmid), wazuh)
    if node_agents:
        for node in site.nodes.all():
            wazuh.add_agent(node.name, group="hypervisors")
    client = WazuhClient.for_manager(manager)
    wazuh.calls.clear()
    slowest = 0.0
    for _ in range(polls):
        started = time.perf_counter()
        with CaptureQueriesContext(connection) as queries:
            result = wazuh_poll_site(manager=manager, client=client)
        slowest = max(slowest, time.perf_counter() - started)
        assert not result.error and result.updated == count
        assert result.listed == count + (2 if node_agents else 0)  # never 000
        assert len(agent_updates(queries)) == 1  # ONE write, whatever the count
    return tally(wazuh), slowest


def test_one_paged_list_and_one_write_whatever_the_number_of_containers(
    wazuh: WazuhDouble,
) -> None:
    few, _ = poll_costs(wazuh, 5, 2000)
    many, seconds = poll_costs(wazuh, 200, 3000)
    assert few == many == {"POST /security/user/authenticate": 1, "GET /agents": 1}
    [listing] = [c for c in wazuh.calls if c.path == "/agents"]
    assert listing.query["select"] == ",".join(POLL_FIELDS)
    assert listing.query["q"] == "id!=000"  # the manager leaves its own agent out
    assert listing.query["limit"] == "500" and listing.query["offset"] == "0"
    assert seconds < 5, seconds


def test_one_list_call_per_poll_for_500_containers_and_two_for_501(wazuh: WazuhDouble) -> None:
    # 500 containers' agents and the manager's 000: ONE GET /agents a poll, three polls on
    # one client, one login (000 no longer spills onto a second page).
    calls, seconds = poll_costs(wazuh, 500, 4000, polls=3)
    assert calls == {"POST /security/user/authenticate": 1, "GET /agents": 3}, calls
    assert {c.query["offset"] for c in wazuh.calls if c.path == "/agents"} == {"0"}
    assert len(wazuh.agents) == 501 and seconds < 5, seconds
    # 501: a second page, from offset 500, every poll.
    calls, _ = poll_costs(wazuh, 501, 5000, polls=3)
    assert calls == {"POST /security/user/authenticate": 1, "GET /agents": 6}, calls
    offsets = [c.query["offset"] for c in wazuh.calls if c.path == "/agents"]
    assert offsets == ["0", "500"] * 3
    # The nodes' own agents are read from the same list, so they share its pages: 498
    # containers and the 2 nodes' agents (and 000) are one page, 499 and 2 are two.
    calls, _ = poll_costs(wazuh, 498, 6000, node_agents=True, polls=2)
    assert calls == {"POST /security/user/authenticate": 1, "GET /agents": 2}, calls
    node_states = WazuhNodeAgent.objects.filter(node__site__slug="s498n")
    assert list(node_states.values_list("status", flat=True)) == ["active", "active"]
    calls, _ = poll_costs(wazuh, 499, 7000, node_agents=True)
    assert calls == {"POST /security/user/authenticate": 1, "GET /agents": 2}, calls


def test_the_rows_take_the_managers_status_id_keepalive_version_and_groups(
    wazuh: WazuhDouble,
) -> None:
    site = make_site(None)
    manager = wazuh.configure(site)
    cts = make_containers(site, 4)
    seen = T0 - timedelta(minutes=3)
    active, down, never, gone = watch(cts, None)
    a = wazuh.add_agent(active.name, last_keepalive=seen, group=["default", "web"])
    d = wazuh.add_agent(down.name, status="disconnected", last_keepalive=T0 - timedelta(hours=2))
    wazuh.add_agent(never.name, status="never_connected")
    wazuh.add_agent("someone-elses-agent")
    result = wazuh_poll_site(manager=manager, now=T0)
    assert (result.listed, result.updated, result.missing) == (4, 4, 1)

    active.refresh_from_db()
    assert (active.status, active.agent_id, active.last_keepalive) == ("active", a.id, seen)
    assert (active.version, active.groups, active.status_updated_at) == (
        VERSION,
        ["default", "web"],
        T0,
    )
    assert active.last_error == ""
    down.refresh_from_db()
    assert (down.status, down.agent_id) == ("disconnected", d.id)
    assert down.last_keepalive == T0 - timedelta(hours=2)
    never.refresh_from_db()
    assert (never.status, never.last_keepalive, never.version) == ("never_connected", None, "")
    gone.refresh_from_db()
    assert gone.status == AgentStatus.MISSING
    assert gone.last_error == "the manager has not listed it since 2026-12-01 12:00 UTC"
    # The manager was only ever read.
    assert {c.method for c in wazuh.calls if c.service == "manager"} == {"POST", "GET"}


def test_an_agent_missing_from_the_manager_is_said_and_nothing_is_deleted(
    wazuh: WazuhDouble,
) -> None:
    site = make_site(None)
    manager = wazuh.configure(site)
    [row] = watch(make_containers(site, 1), wazuh, last_keepalive=T0)
    wazuh_poll_site(manager=manager, now=T0)
    row.refresh_from_db()
    known_id = row.agent_id
    assert row.status == "active" and known_id

    del wazuh.agents[known_id]  # deleted on the manager by someone else
    wazuh_poll_site(manager=manager, now=T0 + timedelta(minutes=1))
    row.refresh_from_db()
    assert row.status == AgentStatus.MISSING
    assert row.last_error == "the manager has not listed it since 2026-12-01 12:01 UTC"
    wazuh_poll_site(manager=manager, now=T0 + timedelta(minutes=9))  # still: since the first
    row.refresh_from_db()
    assert row.last_error == "the manager has not listed it since 2026-12-01 12:01 UTC"
    # What was known is kept, and the row stays: the poll removes nothing anywhere.
    assert (row.agent_id, row.last_keepalive, row.version) == (known_id, T0, VERSION)
    assert WazuhAgent.objects.filter(pk=row.pk).exists()
    assert wazuh.count("DELETE") == 0

    back = wazuh.add_agent(row.name, status="pending")  # enrolled again
    wazuh_poll_site(manager=manager, now=T0 + timedelta(minutes=10))
    row.refresh_from_db()
    assert (row.status, row.agent_id, row.last_error) == ("pending", back.id, "")


def test_leftovers_and_removed_agents_are_not_the_polls(wazuh: WazuhDouble) -> None:
    site = make_site(None)
    manager = wazuh.configure(site)
    leftover, removed = watch(make_containers(site, 2), wazuh)
    WazuhAgent.objects.filter(pk=leftover.pk).update(status=AgentStatus.REMOVAL_PENDING)
    WazuhAgent.objects.filter(pk=removed.pk).update(status=AgentStatus.REMOVED)
    assert wazuh_poll_site(manager=manager, now=T0).updated == 0
    assert set(WazuhAgent.objects.values_list("status", "status_updated_at")) == {
        ("removal_pending", None),
        ("removed", None),
    }


def test_the_nodes_own_agents_are_read_from_the_same_list_and_never_removed(
    wazuh: WazuhDouble,
) -> None:
    site = make_site(None)  # nodes pve2 and pve1
    manager = wazuh.configure(site)
    watch(make_containers(site, 3), wazuh)
    pve1 = wazuh.add_agent("pve1", last_keepalive=T0, group=["hypervisors"])
    wazuh.calls.clear()
    assert wazuh_poll_site(manager=manager, now=T0).nodes == 2
    assert wazuh.count("GET", "/agents") == 1  # the same list
    node_agents = {a.node.name: a for a in WazuhNodeAgent.objects.select_related("node")}
    one, two = node_agents["pve1"], node_agents["pve2"]
    assert (one.status, one.agent_id, one.groups, one.last_keepalive) == (
        "active",
        pve1.id,
        ["hypervisors"],
        T0,
    )
    assert (two.status, two.name, two.agent_id) == (AgentStatus.MISSING, "pve2", "")

    wazuh.agents[pve1.id].status = "disconnected"
    wazuh.add_agent("pve2")
    wazuh_poll_site(manager=manager, now=T0 + timedelta(minutes=1))
    assert dict(WazuhNodeAgent.objects.values_list("node__name", "status")) == {
        "pve1": "disconnected",
        "pve2": "active",
    }
    # The node agents are not the portal's: no WazuhAgent row, nothing ever deleted.
    assert not WazuhAgent.objects.filter(name__in=["pve1", "pve2"]).exists()
    assert wazuh.count("DELETE") == 0


def test_a_manager_that_fails_changes_nothing_and_says_why(wazuh: WazuhDouble) -> None:
    site = make_site(None)
    manager = wazuh.configure(site)
    [row] = watch(make_containers(site, 1), wazuh, last_keepalive=T0)
    wazuh_poll_site(manager=manager, now=T0)
    before = WazuhAgent.objects.values().get(pk=row.pk)
    wazuh.set_down()
    result = wazuh_poll_site(manager=manager, now=T0 + timedelta(minutes=5))
    assert "cannot reach the Wazuh manager" in result.error
    assert WazuhAgent.objects.values().get(pk=row.pk) == before
    manager.refresh_from_db()
    assert manager.polled_at == T0 and "cannot reach" in manager.poll_error
    wazuh.set_down(False)
    wazuh.fail_next("GET", "/agents", 503)
    assert "503" in wazuh_poll_site(manager=manager).error
    assert wazuh_poll_site(manager=manager, now=T0 + timedelta(minutes=6)).error == ""
    manager.refresh_from_db()
    assert manager.poll_error == "" and manager.polled_at == T0 + timedelta(minutes=6)


def test_a_token_that_expires_mid_poll_between_two_pages_costs_one_fresh_login(
    wazuh: WazuhDouble,
) -> None:
    from containers.wazuh.client import WazuhClient

    site = make_site(None)
    manager = wazuh.configure(site)
    watch(make_containers(site, 5), wazuh)
    client = WazuhClient.for_manager(manager, page_limit=2)  # 5 agents (000 left out): 3 pages
    # The manager's clock passes the token's 900 s right after the first page is answered.
    wazuh.advance_after("GET", "/agents", seconds=901)
    result = wazuh_poll_site(manager=manager, client=client)
    assert (result.error, result.listed, result.updated, result.missing) == ("", 5, 5, 0)
    assert client.logins == 2  # the first, and ONE fresh login mid-run
    pages = [(c.query["offset"], c.status) for c in wazuh.calls if c.path == "/agents"]
    assert pages == [("0", 200), ("2", 401), ("2", 200), ("4", 200)]  # page 2 asked again
    assert wazuh.count("POST", "/security/user/authenticate") == 2
    assert WazuhAgent.objects.filter(status="active").count() == 5

    # Between two polls: the token the fresh login gave expires too, and is replaced once.
    wazuh.advance(901)
    wazuh.calls.clear()
    assert wazuh_poll_site(manager=manager, client=client).error == ""
    assert client.logins == 3
    assert [c.status for c in wazuh.calls] == [401, 200, 200, 200, 200]


def test_the_beat_task_polls_every_enabled_manager(wazuh: WazuhDouble, settings: Any) -> None:
    beat = app.conf.beat_schedule["poll-wazuh"]
    assert beat["task"] == "containers.poll_wazuh"
    assert beat["schedule"] == settings.WAZUH_POLL_INTERVAL == 60.0
    on, off = make_site(None, slug="on"), make_site(None, slug="off")
    wazuh.configure(on)
    wazuh.configure(off, enabled=False)
    watch(make_containers(on, 2, first_vmid=5000), wazuh)
    watch(make_containers(off, 2, first_vmid=6000), None)
    wazuh.calls.clear()
    assert tasks.poll_wazuh() == {"on": 2}
    assert [r.site for r in wazuh_poll_all()] == ["on"]
    assert set(WazuhAgent.objects.filter(site=off).values_list("status", flat=True)) == {"pending"}
