"""The status poll: ONE paged `GET /agents` per site with a manager, ONE bulk write.

Every WAZUH_POLL_INTERVAL the beat task lists the site's manager's agents with only the
fields the portal shows (`select=id,name,status,lastKeepAlive,version,group`), leaving the
manager's own agent 000 out on the manager's side (`q=id!=000`), paged by WAZUH_PAGE_LIMIT,
so a poll costs one login and ceil(agents / limit) calls whether the site has 5 containers
or 5,000 (500 agents: one call); nothing here ever asks about one agent.

From that list:
- each `WazuhAgent` the poll keeps (`POLLED_STATUSES`: not a leftover being removed) takes
  the manager's status, id, last keep-alive, version and groups, all rows in ONE UPDATE
  statement (`agents_write`). An agent of the portal's that the manager does not list is
  `missing`, with `last_error` saying since when: the poll never deletes anything, on the
  manager or in the portal;
- each node of the site gets the state of the agent named like it (`WazuhNodeAgent`): the
  hypervisors' own agents, which the portal reads and never removes;
- the disconnection alerts move on (containers/wazuh/alerts.py);
- the manager row records when it was polled, or why the poll failed (`poll_error`).

A manager that cannot be reached leaves every row as it was: a status is only ever replaced
by what the manager said.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from portal.errors import PortalError

from .client import EXCEPT_MANAGER, MANAGER_AGENT_ID, WazuhClient, WazuhError, WazuhUnavailable
from .client import _parse_time as parse_time
from .models import (
    MANAGER_STATUSES,
    POLLED_STATUSES,
    AgentStatus,
    WazuhAgent,
    WazuhManager,
    WazuhNodeAgent,
)

log = logging.getLogger(__name__)

# What the poll asks of each agent (Wazuh always adds the id).
POLL_FIELDS = ("id", "name", "status", "lastKeepAlive", "version", "group")
# What one agent row's poll rewrites, in the order of `AgentRow`'s values.
WRITTEN = (
    "status",
    "agent_id",
    "last_keepalive",
    "version",
    "groups",
    "last_error",
    "status_updated_at",
)


def missing_text(now: datetime) -> str:
    """`last_error` of a missing agent, from the first poll that did not find it."""
    return f"the manager has not listed it since {now:%Y-%m-%d %H:%M} UTC"


@dataclass(frozen=True)
class AgentState:
    """One agent as the manager listed it."""

    agent_id: str
    status: str
    last_keepalive: datetime | None
    version: str
    groups: list[str]

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> AgentState:
        status = str(item.get("status") or "")
        keepalive = parse_time(str(item.get("lastKeepAlive") or ""))
        if keepalive is not None and keepalive.year >= 9999:  # the manager's "never" (000)
            keepalive = None
        groups = item.get("group") or []
        return cls(
            agent_id=str(item.get("id") or "")[:16],
            status=status if status in MANAGER_STATUSES else AgentStatus.PENDING,
            last_keepalive=keepalive,
            version=str(item.get("version") or "")[:64],
            groups=[str(g) for g in (groups if isinstance(groups, list) else [groups])],
        )


@dataclass
class AgentRow:
    """One `WazuhAgent` as the poll leaves it (and what the alert check needs of it)."""

    pk: int
    name: str
    container_id: int | None
    container_status: str | None
    status: str
    agent_id: str
    last_keepalive: datetime | None
    version: str
    groups: list[str]
    last_error: str
    status_updated_at: datetime

    def values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in WRITTEN)


@dataclass(frozen=True)
class PollResult:
    site: str
    listed: int = 0  # agents the manager listed (others' included; never its own 000)
    updated: int = 0  # the portal's agent rows written
    missing: int = 0  # of those, not on the manager
    nodes: int = 0  # node agent rows written
    raised: int = 0
    cleared: int = 0
    error: str = ""


# -- one site ----------------------------------------------------------------------------------
def list_agents(client: WazuhClient) -> dict[str, AgentState]:
    """Every agent of the manager by name, but the manager's own: one paged list that the
    manager makes without 000 (a page of 500 holds 500 of the agents the poll reads)."""
    items = client.agents(select=POLL_FIELDS, q=EXCEPT_MANAGER)
    return {
        str(item.get("name")): AgentState.from_item(item)
        for item in items
        if str(item.get("id")) != MANAGER_AGENT_ID and item.get("name")
    }


def agent_rows(
    manager: WazuhManager, listed: dict[str, AgentState], now: datetime
) -> list[AgentRow]:
    """The site's polled agents (one query) with what the list says of each (no I/O)."""
    rows = []
    for values in (
        WazuhAgent.objects.filter(site_id=manager.site_id, status__in=POLLED_STATUSES)
        .order_by("pk")
        .values_list(
            "pk",
            "name",
            "container_id",
            "container__status",
            "status",
            "last_error",
            "agent_id",
            "last_keepalive",
            "version",
            "groups",
        )
    ):
        pk, name, container_id, container_status, status, error = values[:6]
        agent_id, keepalive, version, groups = values[6:]
        state = listed.get(name)
        if state is None:  # keep the last known values, say since when it is gone
            if status != AgentStatus.MISSING or not error:
                error = missing_text(now)
            row = AgentRow(
                pk, name, container_id, container_status, AgentStatus.MISSING, agent_id,
                keepalive, version, list(groups or []), error, now,
            )  # fmt: skip
        else:
            row = AgentRow(
                pk, name, container_id, container_status, state.status, state.agent_id,
                state.last_keepalive, state.version, state.groups, "", now,
            )  # fmt: skip
        rows.append(row)
    return rows


def wazuh_poll_site(
    *, manager: WazuhManager, now: datetime | None = None, client: WazuhClient | None = None
) -> PollResult:
    """Poll one site's manager: one paged list, one write of the agents, one of the nodes'
    agents, the alerts. A manager that fails is recorded on its row, and nothing else moves."""
    from .alerts import evaluate_disconnects

    slug = manager.site.slug
    client = client or WazuhClient.for_manager(manager)
    try:
        listed = list_agents(client)
    except (WazuhError, WazuhUnavailable) as exc:
        WazuhManager.objects.filter(pk=manager.pk).update(poll_error=str(exc)[:500])
        log.warning("wazuh: the manager of %s was not polled: %s", slug, exc)
        return PollResult(site=slug, error=str(exc))
    now = now or timezone.now()
    rows = agent_rows(manager, listed, now)
    with transaction.atomic():
        agents_write(rows)
        nodes = node_agents_write(manager, listed, now)
        WazuhManager.objects.filter(pk=manager.pk).update(polled_at=now, poll_error="")
    try:
        report = evaluate_disconnects(rows, manager=manager, now=now)
    except Exception:  # the states are written; an alert can wait for the next poll
        log.exception("wazuh: the disconnection check of %s failed", slug)
        report = None
    return PollResult(
        site=slug,
        listed=len(listed),
        updated=len(rows),
        missing=sum(1 for r in rows if r.status == AgentStatus.MISSING),
        nodes=nodes,
        raised=report.raised if report else 0,
        cleared=report.cleared if report else 0,
    )


def wazuh_poll_all() -> list[PollResult]:
    """Every enabled manager once; one that fails is reported and the others go on."""
    results = []
    for manager in WazuhManager.objects.filter(enabled=True).select_related("site"):
        try:
            results.append(wazuh_poll_site(manager=manager))
        except PortalError as exc:
            log.warning("wazuh: site %s not polled: %s", manager.site.slug, exc)
            results.append(PollResult(site=manager.site.slug, error=str(exc)))
    return results


# -- the writes --------------------------------------------------------------------------------
def _stamp(value: datetime | None) -> str | None:
    """A datetime as the database reads it back from JSON text."""
    if value is None:
        return None
    if connection.vendor == "postgresql":
        return value.isoformat()
    return str(connection.ops.adapt_datetimefield_value(value))


def agents_write(rows: Sequence[AgentRow]) -> None:
    """ONE UPDATE of every row, whatever their number: the rows go as one JSON document
    that the database turns into a table to join (PostgreSQL's `jsonb_to_recordset`,
    SQLite's `json_each`), instead of a statement per row or per batch."""
    if not rows:
        return
    payload = json.dumps(
        [
            {
                "id": r.pk,
                "status": r.status,
                "agent_id": r.agent_id,
                "last_keepalive": _stamp(r.last_keepalive),
                "version": r.version,
                "groups": r.groups,
                "last_error": r.last_error[:500],
                "status_updated_at": _stamp(r.status_updated_at),
            }
            for r in rows
        ]
    )
    with connection.cursor() as cursor:
        cursor.execute(_update_sql(), [payload])


def _update_sql() -> str:
    """The UPDATE of `agents_write` for this database. Names come from the model and the
    rows are one bound parameter: nothing from outside is spliced into the statement."""
    qn = connection.ops.quote_name
    table, pk = qn(WazuhAgent._meta.db_table), qn("id")
    sets = ", ".join(f"{qn(c)} = v.{qn(c)}" for c in WRITTEN)
    if connection.vendor == "postgresql":
        types = {"last_keepalive": "timestamptz", "status_updated_at": "timestamptz"}
        types["groups"] = "jsonb"
        columns = ", ".join(f"{qn(c)} {types.get(c, 'text')}" for c in WRITTEN)
        source = f"jsonb_to_recordset(%s::jsonb) AS v({pk} bigint, {columns})"
        return f"UPDATE {table} AS a SET {sets} FROM {source} WHERE a.{pk} = v.{pk}"  # noqa: S608
    picks = ", ".join(f"json_extract(j.value, '$.{c}') AS {qn(c)}" for c in ("id", *WRITTEN))
    source = f"(SELECT {picks} FROM json_each(%s) AS j) AS v"  # noqa: S608
    return f"UPDATE {table} SET {sets} FROM {source} WHERE {table}.{pk} = v.{pk}"  # noqa: S608


def node_agents_write(manager: WazuhManager, listed: dict[str, AgentState], now: datetime) -> int:
    """The site's nodes' own agents, matched by the node's name: one upsert. A node whose
    agent the list lacks is `missing`, keeping what was last known of it."""
    from networking.models import Node

    nodes = list(Node.objects.filter(site_id=manager.site_id).values_list("pk", "name"))
    if not nodes:
        return 0
    known = WazuhNodeAgent.objects.in_bulk([pk for pk, _ in nodes])
    rows = []
    for pk, name in nodes:
        state = listed.get(name)
        if state is not None:
            rows.append(
                WazuhNodeAgent(
                    node_id=pk,
                    name=name,
                    agent_id=state.agent_id,
                    status=state.status,
                    last_keepalive=state.last_keepalive,
                    version=state.version,
                    groups=state.groups,
                    status_updated_at=now,
                )
            )
            continue
        last = known.get(pk)
        rows.append(
            WazuhNodeAgent(
                node_id=pk,
                name=name,
                agent_id=last.agent_id if last else "",
                status=AgentStatus.MISSING,
                last_keepalive=last.last_keepalive if last else None,
                version=last.version if last else "",
                groups=last.groups if last else [],
                status_updated_at=now,
            )
        )
    WazuhNodeAgent.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["node"],
        update_fields=[
            "name",
            "agent_id",
            "status",
            "last_keepalive",
            "version",
            "groups",
            "status_updated_at",
        ],
    )
    return len(rows)
