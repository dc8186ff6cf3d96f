"""What the owner sees of a container's security monitoring, on its page and in the API,
against the double: the agent's status as polled, its recent alerts from the indexer's
search (paged, cached), a clear message when the indexer is down (never a 5xx), 404 for
others, and nothing at all where the site has no Wazuh."""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client

from auth import tokens as auth_tokens
from containers.models import Container
from containers.wazuh.poll import wazuh_poll_site
from containers.wazuh.security import ALERTS_PAGE_SIZE
from tests.api_contract import check
from tests.factories import make_access_world
from tests.fixtures.wazuh_double import VERSION, WazuhDouble

from .arrange import watch

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SEARCH = "/wazuh-alerts-*/_search"


@pytest.fixture
def world(wazuh: WazuhDouble) -> dict[str, Any]:
    """make_access_world's container `app` (owner, collab, other, staff) watched by an
    active agent on the double, polled once."""
    w = make_access_world()
    w["manager"] = wazuh.configure(w["site"])
    [w["agent"]] = watch([w["container"]], wazuh, last_keepalive=T0, group=["default", "web"])
    assert not wazuh_poll_site(manager=w["manager"], now=T0 + timedelta(minutes=1)).error
    w["agent"].refresh_from_db()
    return w


def login(username: str) -> Client:
    client = Client()
    client.force_login(User.objects.get(username=username))
    return client


def page_of(container: Container, who: str = "owner", query: str = "") -> str:
    response = login(who).get(f"/containers/{container.pk}/{query}")
    assert response.status_code == 200
    return html.unescape(response.content.decode())


def api(container: Container, query: str = "", client: Client | None = None) -> Any:
    return check(
        (client or login("owner")).get(f"/api/v1/containers/{container.pk}/security/{query}")
    )


def searches(wazuh: WazuhDouble) -> int:
    return wazuh.count("POST", SEARCH, service="indexer")


def seed(wazuh: WazuhDouble, name: str, count: int) -> None:
    """`count` alerts, one a minute from T0 - count minutes; alert i has level i % 16."""
    for i in range(count):
        wazuh.seed_alert(
            name,
            i % 16,
            f"alert number {i}",
            rule_id=str(5700 + i),
            groups=("syslog", "sshd") if i % 2 else ("ossec", "rootcheck"),
            timestamp=T0 - timedelta(minutes=count - i),
        )


def test_the_page_shows_the_agent_and_its_recent_alerts_paged_and_cached(
    wazuh: WazuhDouble, world: dict[str, Any]
) -> None:
    c, agent = world["container"], world["agent"]
    seed(wazuh, agent.name, ALERTS_PAGE_SIZE + 5)
    wazuh.seed_alert("someone-else", 15, "not this container's")
    page = page_of(c)
    assert "Security monitoring" in page
    assert f"<code>{agent.name}</code>" in page
    assert 'data-agent-status="active"' in page
    assert 'data-agent-keepalive><time datetime="2026-12-01T12:00:00+00:00">' in page
    assert f"data-agent-version>{VERSION}<" in page
    assert "data-agent-groups>default, web<" in page
    # Newest first: alert 24 (level 8) leads; a page of 20 of 25, and a link to the older.
    assert f"{ALERTS_PAGE_SIZE + 5} alerts, newest first" in page
    rows = page.split("data-alert-rule=")[1:]
    assert len(rows) == ALERTS_PAGE_SIZE
    assert rows[0].startswith('"5724"') and "alert number 24" in rows[0]
    assert 'data-alert-level="8">8 medium</span>' in rows[0]
    assert "alert number 24 <span" in rows[0] and "rule 5724</span>" in rows[0]
    assert "syslog, sshd" in rows[1] or "ossec, rootcheck" in rows[1]
    assert "not this container's" not in page
    assert '?alerts_page=2#security" rel="next">Older<' in page and "Page 1 of 2" in page
    older = page_of(c, query="?alerts_page=2")
    assert older.count("data-alert-rule=") == 5 and "alert number 0" in older
    assert '?alerts_page=1#security" rel="prev">Newer<' in older

    # Cached: the same pages again, by anyone allowed, cost no new search.
    before = searches(wazuh)
    page_of(c, "collab")
    page_of(c, "staff", "?alerts_page=2")
    assert searches(wazuh) == before == 2


def test_an_indexer_that_is_down_is_a_message_not_an_error(
    wazuh: WazuhDouble, world: dict[str, Any]
) -> None:
    c = world["container"]
    wazuh.set_down()
    page = page_of(c)
    assert "The Wazuh indexer is not answering right now" in page
    assert 'data-agent-status="active"' in page  # the polled state is still shown
    body = api(c).json()
    assert body["agent"]["status"] == "active"
    assert body["alerts"]["error"].startswith("The Wazuh indexer is not answering")
    assert body["alerts"]["results"] == []
    wazuh.set_down(False)
    wazuh.fail_next("POST", SEARCH, 400, service="indexer")  # a refused search
    page = page_of(c, query="?alerts_page=3")
    assert "The Wazuh indexer refused the search" in page
    assert "data-alerts-none" in page_of(c)  # back, and nothing to show


def test_the_empty_states_and_a_disconnected_agent_say_what_they_mean(
    wazuh: WazuhDouble, world: dict[str, Any]
) -> None:
    c, manager = world["container"], world["manager"]
    # Active: no note under its status.
    assert "data-agent-note" not in page_of(c)
    # Disconnected while the container runs: where to look; stopped: that it is expected.
    on_manager = wazuh.agent_named(world["agent"].name)
    assert on_manager is not None
    on_manager.status = "disconnected"
    assert not wazuh_poll_site(manager=manager, now=T0 + timedelta(minutes=2)).error
    page = page_of(c)
    assert 'class="badge agent-disconnected" data-agent-status="disconnected"' in page
    assert "check that the <code>wazuh-agent</code> service runs in app." in page
    Container.objects.filter(pk=c.pk).update(status="stopped")
    assert "Expected while app is stopped: the agent connects again when it starts." in page_of(c)
    # A site whose monitoring has no indexer: said, not silently left out.
    type(manager).objects.filter(pk=manager.pk).update(indexer_url="")
    cache.clear()
    before = searches(wazuh)
    page = page_of(c)
    assert "Recent alerts are not shown for this site" in page and "data-alerts>" not in page
    assert searches(wazuh) == before
    # No agent yet: said so, and nothing of alerts.
    world["agent"].delete()
    page = page_of(c)
    assert "No Wazuh agent is registered for app yet." in page
    assert "Recent alerts" not in page


def test_the_api_gives_the_agent_and_a_page_of_alerts(
    wazuh: WazuhDouble, world: dict[str, Any]
) -> None:
    c, agent = world["container"], world["agent"]
    seed(wazuh, agent.name, ALERTS_PAGE_SIZE + 1)
    body = api(c).json()
    assert body["agent"] == {
        "name": agent.name,
        "agent_id": agent.agent_id,
        "status": "active",
        "status_display": "active",
        "last_keepalive": "2026-12-01T12:00:00Z",
        "version": VERSION,
        "groups": ["default", "web"],
        "status_updated_at": "2026-12-01T12:01:00Z",
        "last_error": "",
    }
    alerts = body["alerts"]
    assert (alerts["count"], alerts["page"], alerts["pages"], alerts["error"]) == (
        ALERTS_PAGE_SIZE + 1,
        1,
        2,
        None,
    )
    first = alerts["results"][0]
    assert first == {
        "time": "2026-12-01T11:59:00Z",
        "level": ALERTS_PAGE_SIZE % 16,
        "severity": "low",
        "description": f"alert number {ALERTS_PAGE_SIZE}",
        "rule_id": str(5700 + ALERTS_PAGE_SIZE),
        "rule_groups": ["ossec", "rootcheck"],
    }
    last = api(c, "?page=2").json()["alerts"]
    assert [a["description"] for a in last["results"]] == ["alert number 0"]
    bad = api(c, "?page=0")
    assert bad.status_code == 400 and bad.json()["code"] == "invalid"


ROLES = ("anonymous", "other", "collab", "owner", "staff", "read_token")


@pytest.mark.parametrize(
    ("role", "status"), list(zip(ROLES, (401, 404, 200, 200, 200, 200), strict=True))
)
def test_owner_collaborators_and_staff_only(world: dict[str, Any], role: str, status: int) -> None:
    if role == "anonymous":
        client = Client()
    elif role == "read_token":
        _, token = auth_tokens.token_create(
            user=world["owner"], name="read", scope="read", expires_in_days=7
        )
        client = Client(headers={"Authorization": f"Bearer {token}"})
    else:
        client = login(role)
    response = api(world["container"], client=client)
    assert response.status_code == status
    if status == 404:  # as for any container not theirs: nothing said of it
        assert "wazuh" not in response.content.decode().lower()


def test_a_site_without_wazuh_mentions_none_of_it(wazuh: WazuhDouble) -> None:
    w = make_access_world()
    c = w["container"]
    page = page_of(c)
    assert "wazuh" not in page.lower() and "Security monitoring" not in page
    response = api(c)
    assert response.status_code == 404 and "security monitoring" in response.json()["message"]
    assert "wazuh" not in response.content.decode().lower()
    # Turned off: the same, whatever rows and alerts the portal still holds.
    manager = wazuh.configure(w["site"], enabled=False)
    watch([c], wazuh)
    assert manager.pk and "wazuh" not in page_of(c).lower()
    assert api(c).status_code == 404
    assert wazuh.calls == []
