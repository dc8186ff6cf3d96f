"""What operators see of Wazuh beside the settings: a manager's page shows the last poll, its
site's agents by status (the containers' and the nodes' own) and the site's highest-level
recent alerts (cached); the node admin shows each hypervisor's own agent beside its
containers' agents. Reads only: the status poll (poll.py) writes what is shown here.

The texts are pure functions of rows (tests/unit/containers/test_wazuh_status.py)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from networking.models import Node
from portal import units

from .models import AgentStatus, WazuhManager, WazuhNodeAgent
from .security import AlertsShown, site_top_alerts
from .selectors import agent_counts, wazuh_in_use


# -- the texts ---------------------------------------------------------------------------------
def counts_text(counts: dict[str, int]) -> str:
    """`3 active, 1 disconnected` in AgentStatus's order; `none` when empty."""
    parts = [
        f"{counts[status]} {AgentStatus(status).label}"
        for status in AgentStatus.values
        if counts.get(status)
    ]
    return ", ".join(parts) or "none"


def node_agent_text(agent: WazuhNodeAgent | None, now: Any) -> str:
    """`active, version Wazuh v4.14.7, last keep-alive 2 min ago`."""
    if agent is None:
        return "not polled yet"
    text = str(agent.get_status_display())
    if agent.status == AgentStatus.MISSING:
        return f"{text} (no agent named {agent.name})"
    if agent.version:
        text += f", {agent.version}"
    if agent.last_keepalive:
        text += f", last keep-alive {units.ago(agent.last_keepalive, now)}"
    return text


def poll_text(manager: WazuhManager, now: Any) -> str:
    if manager.polled_at is None and not manager.poll_error:
        return "not polled yet"
    text = f"listed {units.ago(manager.polled_at, now)}" if manager.polled_at else "never listed"
    if manager.poll_error:
        text += f"; the last poll failed: {manager.poll_error}"
    return text


def alerts_table(shown: AlertsShown) -> SafeString:
    if shown.error:
        return format_html('<p class="errornote">{}</p>', shown.error)
    if not shown.alerts:
        return format_html("<p>{}</p>", "No alert at or above the level shown.")
    rows = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                a.time.strftime("%Y-%m-%d %H:%M:%S") if a.time else units.DASH,
                a.level,
                a.agent_name,
                a.description,
                ", ".join(a.rule_groups),
            )
            for a in shown.alerts
        ),
    )
    return format_html(
        "<table data-top-alerts><caption>{} of {} alerts, highest level first</caption>"
        "<thead><tr><th>Time (UTC)</th><th>Level</th><th>Agent</th><th>Description</th>"
        "<th>Rule groups</th></tr></thead><tbody>{}</tbody></table>",
        len(shown.alerts),
        shown.total,
        rows,
    )


# -- a manager's page --------------------------------------------------------------------------
class ManagerStatusFields:
    """Read-only fields of a manager's change page."""

    STATUS = ("poll_state", "agents_summary", "node_agents_summary")
    ALERTS = ("top_alerts",)

    @admin.display(description="Status poll")
    def poll_state(self, manager: WazuhManager) -> str:
        return poll_text(manager, timezone.now()) if manager.pk else units.DASH

    @admin.display(description="Containers' agents")
    def agents_summary(self, manager: WazuhManager) -> str:
        return counts_text(agent_counts(manager.site_id)) if manager.pk else units.DASH

    @admin.display(description="Nodes' own agents")
    def node_agents_summary(self, manager: WazuhManager) -> str:
        if not manager.pk:
            return units.DASH
        now = timezone.now()
        nodes = Node.objects.filter(site_id=manager.site_id).select_related("wazuh_agent")
        lines = [
            f"{node.name}: {node_agent_text(getattr(node, 'wazuh_agent', None), now)}"
            for node in nodes.order_by("name")
        ]
        return "; ".join(lines) or "no nodes"

    @admin.display(description="Highest-level recent alerts")
    def top_alerts(self, manager: WazuhManager) -> SafeString | str:
        if not manager.pk:
            return units.DASH
        if not manager.has_indexer:
            return "No indexer configured: no alerts to show."
        return alerts_table(site_top_alerts(manager))


# -- the node admin ----------------------------------------------------------------------------
class NodeAgentColumns:
    """The node admin's Wazuh column and field, shown only while some site has an enabled
    manager. Its queryset must be `selectors.nodes_with_agents` (one query for the list)."""

    WAZUH = ("wazuh_agents_shown",)

    @admin.display(description="Wazuh agents (node; its containers)")
    def wazuh_agents_shown(self, node: Node) -> str:
        manager = getattr(node.site, "wazuh", None)
        if manager is None or not manager.enabled:
            return units.DASH
        own = node_agent_text(getattr(node, "wazuh_agent", None), timezone.now())
        total = getattr(node, "wazuh_agents", None)
        if total is None:  # not annotated by nodes_with_agents
            return own
        active = getattr(node, "wazuh_agents_active", 0)
        return f"{own}; containers: {active} of {total} active"

    def wazuh_columns(self, request: HttpRequest) -> tuple[str, ...]:
        return self.WAZUH if wazuh_in_use() else ()
