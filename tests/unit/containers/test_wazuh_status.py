"""The status poll's reading of an agent and the admin's texts (containers/wazuh/poll.py,
admin_status.py), the alert pages' arithmetic (security.py), an alert level's severity
band (client.py) and portalctl's lines of an agent: pure functions, no server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from containers.wazuh.admin_status import counts_text, node_agent_text, poll_text
from containers.wazuh.client import AlertSeverity, severity_of
from containers.wazuh.models import AgentStatus, WazuhManager, WazuhNodeAgent
from containers.wazuh.poll import AgentState, missing_text
from containers.wazuh.security import MAX_ALERTS_DEPTH, AlertsShown
from portalctl.commands.security import agent_lines

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_an_agent_item_is_read_as_the_manager_lists_it() -> None:
    state = AgentState.from_item(
        {
            "id": "007",
            "name": "lyon-1001-42",
            "status": "disconnected",
            "lastKeepAlive": "2026-12-01T11:30:00+00:00",
            "version": "Wazuh v4.14.7",
            "group": ["default", "web"],
        }
    )
    assert state == AgentState(
        "007", "disconnected", NOW - timedelta(minutes=30), "Wazuh v4.14.7", ["default", "web"]
    )
    # Never connected: no keep-alive, no version, no group; the manager's "never" is none.
    assert AgentState.from_item({"id": "008", "status": "never_connected"}) == AgentState(
        "008", "never_connected", None, "", []
    )
    assert (
        AgentState.from_item(
            {"id": "000", "status": "active", "lastKeepAlive": "9999-12-31T23:59:59+00:00"}
        ).last_keepalive
        is None
    )
    # A status this portal does not know (a newer manager's) is not written as such.
    assert AgentState.from_item({"id": "9", "status": "sleeping"}).status == "pending"


def test_the_admin_texts() -> None:
    assert counts_text({}) == "none"
    assert counts_text({"missing": 2, "active": 5, "disconnected": 1}) == (
        "5 active, 1 disconnected, 2 not on the manager"
    )
    assert node_agent_text(None, NOW) == "not polled yet"
    seen = WazuhNodeAgent(
        name="pve1",
        status=AgentStatus.ACTIVE,
        version="Wazuh v4.14.7",
        last_keepalive=NOW - timedelta(minutes=2),
    )
    assert node_agent_text(seen, NOW).startswith("active, Wazuh v4.14.7, last keep-alive ")
    gone = WazuhNodeAgent(name="pve2", status=AgentStatus.MISSING, version="old")
    assert node_agent_text(gone, NOW) == "not on the manager (no agent named pve2)"
    assert poll_text(WazuhManager(), NOW) == "not polled yet"
    failed = WazuhManager(polled_at=None, poll_error="cannot reach the Wazuh manager")
    assert (
        poll_text(failed, NOW)
        == "never listed; the last poll failed: cannot reach the Wazuh manager"
    )
    assert missing_text(NOW) == "the manager has not listed it since 2026-12-01 12:00 UTC"


def test_alert_pages_stop_where_the_indexer_stops_answering() -> None:
    assert AlertsShown(page=1, page_size=20).pages == 1
    page = AlertsShown(page=1, page_size=20, total=41)
    assert (page.pages, page.has_next, page.has_previous) == (3, True, False)
    deep = AlertsShown(page=2, page_size=20, total=10 * MAX_ALERTS_DEPTH)
    assert deep.pages == MAX_ALERTS_DEPTH // 20 and deep.has_previous
    assert not AlertsShown(page=1, page_size=20, total=41, error="down").has_next


def test_a_level_falls_in_the_severity_band_of_wazuhs_dashboard() -> None:
    bands = {level: severity_of(level) for level in range(17)}
    assert {b: min(lv for lv, s in bands.items() if s == b) for b in AlertSeverity} == {
        AlertSeverity.LOW: 0,
        AlertSeverity.MEDIUM: 7,
        AlertSeverity.HIGH: 12,
        AlertSeverity.CRITICAL: 15,
    }
    assert (bands[6], bands[11], bands[14], bands[16]) == ("low", "medium", "high", "critical")


def test_portalctl_lines_of_an_agent() -> None:
    assert agent_lines(None) == [("agent", "none registered yet")]
    lines = dict(
        agent_lines(
            {
                "name": "lyon-1001-42",
                "status": "missing",
                "status_display": "not on the manager",
                "last_error": "the manager has not listed it since 2026-12-01 12:00 UTC",
                "status_updated_at": "2026-12-01T12:00:00Z",
                "last_keepalive": None,
                "version": "",
                "groups": ["default"],
            }
        )
    )
    assert lines["status"].startswith("not on the manager (the manager has not listed it since")
    assert lines["status"].endswith(", as of 2026-12-01 12:00:00")
    assert (lines["last keep-alive"], lines["version"], lines["groups"]) == (
        "never",
        "-",
        "default",
    )
