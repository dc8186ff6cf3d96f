"""The operators' view, against the double: a manager's admin page shows the last poll, the
site's agents by status (its containers' and its nodes' own) and the site's highest-level
recent alerts (cached; an indexer down is a message); the node admin shows each
hypervisor's own agent beside its containers' agents, and only while some site has Wazuh."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from containers.models import WazuhAgent
from containers.wazuh.poll import wazuh_poll_site
from tests.factories import UserFactory, make_containers, make_site
from tests.fixtures.wazuh_double import INDEXER_PASSWORD, MANAGER_PASSWORD, WazuhDouble

from .arrange import watch

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SEARCH = "/wazuh-alerts-*/_search"


@pytest.fixture
def staff() -> Client:
    client = Client()
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def page_of(response: Any) -> str:
    assert response.status_code == 200
    page = html.unescape(response.content.decode())
    assert MANAGER_PASSWORD not in page and INDEXER_PASSWORD not in page
    return page


def readonly(page: str, field: str) -> str:
    """The text of a read-only field of an admin change page."""
    found = re.search(rf'field-{field}">.*?<div class="readonly">(.*?)</div>', page, re.S)
    assert found, field
    return found[1]


def test_a_managers_page_shows_the_poll_the_agents_and_the_top_alerts(
    wazuh: WazuhDouble, staff: Client, settings: Any
) -> None:
    settings.WAZUH_TOP_ALERTS_MIN_LEVEL = 10
    site = make_site(None)  # nodes pve2, pve1
    manager = wazuh.configure(site)
    cts = make_containers(site, 4)
    up = watch(cts[:2], wazuh, last_keepalive=T0)
    down = watch(cts[2:3], wazuh, status="disconnected", last_keepalive=T0)
    watch(cts[3:], None)  # not enrolled yet
    wazuh.add_agent("pve1", last_keepalive=T0)
    wazuh.seed_alert(up[0].name, 12, "Multiple authentication failures", timestamp=T0)
    wazuh.seed_alert(down[0].name, 15, "Rootkit detected", timestamp=T0 - timedelta(hours=1))
    wazuh.seed_alert("pve1", 10, "Host-based anomaly", timestamp=T0 - timedelta(hours=2))
    wazuh.seed_alert(up[1].name, 3, "Login session opened", timestamp=T0)  # below the level
    wazuh.seed_alert("another-sites-agent", 15, "Not this site's", timestamp=T0)
    change = f"/admin/containers/wazuhmanager/{manager.pk}/change/"

    page = page_of(staff.get(change))
    assert readonly(page, "poll_state") == "not polled yet"
    wazuh_poll_site(manager=manager)
    page = page_of(staff.get(change))
    assert readonly(page, "poll_state").startswith("listed ")
    assert readonly(page, "agents_summary") == "2 active, 1 disconnected, 1 not on the manager"
    nodes = readonly(page, "node_agents_summary")
    assert nodes.startswith("pve1: active, Wazuh v4.14.7, last keep-alive ")
    assert nodes.endswith("; pve2: not on the manager (no agent named pve2)")
    alerts = readonly(page, "top_alerts")
    described = re.findall(r"<td>(\d+)</td><td>([^<]+)</td><td>([^<]+)</td>", alerts)
    assert described == [
        ("15", down[0].name, "Rootkit detected"),
        ("12", up[0].name, "Multiple authentication failures"),
        ("10", "pve1", "Host-based anomaly"),
    ]
    assert "3 of 3 alerts, highest level first" in alerts

    # Cached: the page again costs no search; a failing manager's poll is said.
    searches = wazuh.count("POST", SEARCH, service="indexer")
    wazuh.set_down()
    wazuh_poll_site(manager=manager)
    page = page_of(staff.get(change))
    assert wazuh.count("POST", SEARCH, service="indexer") == searches == 1
    assert "the last poll failed: cannot reach the Wazuh manager" in readonly(page, "poll_state")
    assert "Rootkit detected" in readonly(page, "top_alerts")


def test_an_indexer_that_is_down_is_said_on_the_managers_page(
    wazuh: WazuhDouble, staff: Client
) -> None:
    site = make_site(None)
    manager = wazuh.configure(site)
    watch(make_containers(site, 1), wazuh)
    wazuh.set_down()
    page = page_of(staff.get(f"/admin/containers/wazuhmanager/{manager.pk}/change/"))
    assert "cannot reach the Wazuh indexer" in readonly(page, "top_alerts")
    manager.indexer_url = ""
    manager.save(update_fields=["indexer_url"])
    page = page_of(staff.get(f"/admin/containers/wazuhmanager/{manager.pk}/change/"))
    assert readonly(page, "top_alerts") == "No indexer configured: no alerts to show."


def test_the_node_admin_shows_each_nodes_agent_beside_its_containers(
    wazuh: WazuhDouble, staff: Client
) -> None:
    site = make_site(None)
    nodes = {n.name: n for n in site.nodes.all()}
    page = page_of(staff.get("/admin/networking/node/"))
    assert "wazuh_agents_shown" not in page  # no site has Wazuh: no column

    manager = wazuh.configure(site)
    cts = make_containers(site, 10)  # alternating between the two nodes
    rows = watch(cts[:4], wazuh)
    silent = wazuh.agent_named(rows[0].name)
    assert silent is not None
    silent.status = "disconnected"
    wazuh.add_agent("pve2", status="disconnected", last_keepalive=T0)
    wazuh_poll_site(manager=manager)
    on_node = {n: WazuhAgent.objects.filter(container__node__name=n).count() for n in nodes}
    assert on_node == {"pve1": 2, "pve2": 2}

    with CaptureQueriesContext(connection) as queries:
        page = page_of(staff.get("/admin/networking/node/"))
    assert "Wazuh agents (node; its containers)" in page
    cells = dict(
        re.findall(
            r'<a href="[^"]*/(\d+)/change/[^>]*>[^<]+</a>.*?field-wazuh_agents_shown">([^<]*)<',
            page,
            re.S,
        )
    )
    first_on = cts[0].node.name
    assert cells[str(nodes["pve1"].pk)].startswith("not on the manager (no agent named pve1); ")
    assert cells[str(nodes["pve2"].pk)].startswith("disconnected, Wazuh v4.14.7, last keep-alive ")
    assert cells[str(nodes[first_on].pk)].endswith("containers: 1 of 2 active")
    other = "pve1" if first_on == "pve2" else "pve2"
    assert cells[str(nodes[other].pk)].endswith("containers: 2 of 2 active")
    listed = len(queries)
    watch(cts[4:], wazuh)  # more agents: no more queries
    with CaptureQueriesContext(connection) as queries:
        page_of(staff.get("/admin/networking/node/"))
    assert len(queries) == listed

    page = page_of(staff.get(f"/admin/networking/node/{nodes['pve2'].pk}/change/"))
    assert "Security monitoring (Wazuh)" in page
    assert readonly(page, "wazuh_agents_shown").startswith("disconnected, Wazuh v4.14.7")
