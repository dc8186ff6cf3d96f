"""containers security: a container's Wazuh agent and its recent alerts."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ..output import Column, fields, print_json, say, table, text, when
from ..resolve import container, container_path
from ..state import SESSION
from ._common import JsonOpt, NameArg

ALERT_COLUMNS: list[Column] = [
    ("TIME", lambda a: when(a.get("time"))),
    ("LEVEL", lambda a: f"{a.get('level')} {a.get('severity') or ''}".strip()),
    ("DESCRIPTION", "description"),
    ("RULE GROUPS", "rule_groups"),
]


def agent_lines(agent: dict[str, Any] | None) -> list[tuple[str, Any]]:
    if agent is None:
        return [("agent", "none registered yet")]
    status = agent.get("status_display") or agent.get("status")
    if agent.get("last_error"):
        status = f"{status} ({agent['last_error']})"
    return [
        ("agent", agent.get("name")),
        ("status", f"{status}, as of {when(agent.get('status_updated_at'))}"),
        (
            "last keep-alive",
            when(agent.get("last_keepalive")) if agent.get("last_keepalive") else "never",
        ),
        ("version", text(agent.get("version"))),
        ("groups", text(agent.get("groups"))),
    ]


def security(
    name: NameArg,
    page: Annotated[int, typer.Option("--page", min=1, help="Page of alerts (newest first).")] = 1,
    json_: JsonOpt = False,
) -> None:
    """A container's security monitoring: its Wazuh agent's status, last keep-alive,
    version and groups, and a page of its recent alerts."""
    api = SESSION.api()
    found = api.get(container_path(container(api, name), "security/"), page=page)
    if json_:
        print_json(found)
        return
    fields(agent_lines(found.get("agent")))
    alerts = found.get("alerts")
    if alerts is None:
        return
    if alerts.get("error"):
        say(f"alerts: {alerts['error']}")
        return
    table(
        alerts.get("results") or [], ALERT_COLUMNS, empty=f"no alerts on page {alerts.get('page')}"
    )
    if alerts.get("pages", 1) > 1:
        say(
            f"page {alerts.get('page')} of {alerts.get('pages')} ({alerts.get('count')} alerts): "
            "--page N for another"
        )
