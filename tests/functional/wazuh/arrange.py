"""Arrangements of the Wazuh tests: the portal's agent rows of containers, and the matching
agents on the double (what enrolment does, built on its own by the enrolment's tests)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from containers.models import Container, WazuhAgent
from containers.wazuh.names import agent_name_for
from tests.fixtures.wazuh_double import WazuhDouble


def watch(
    containers: Iterable[Container],
    wazuh: WazuhDouble | None = None,
    *,
    status: str = "active",
    last_keepalive: datetime | None = None,
    group: str | list[str] = "default",
    **agent: Any,
) -> list[WazuhAgent]:
    """A `WazuhAgent` row (pending, as enrolment leaves it) per container, and, given the
    double, the agent each container's first boot would have registered there."""
    rows = WazuhAgent.objects.bulk_create(
        WazuhAgent(site_id=c.site_id, container=c, name=agent_name_for(c)) for c in containers
    )
    if wazuh is not None:
        for row in rows:
            wazuh.add_agent(
                row.name, status=status, last_keepalive=last_keepalive, group=group, **agent
            )
    return rows
