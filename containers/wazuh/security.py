"""What the owner's page, the API and the CLI show of a container's security monitoring,
and the admin's view of a site's alerts: reads only.

- The agent's state is the portal's row as the status poll last wrote it (poll.py): no
  call to the manager when someone looks.
- Recent alerts are read from the site's indexer (`wazuh-alerts-*`, filtered by the agent's
  name), a page of ALERTS_PAGE_SIZE at a time, and cached WAZUH_ALERTS_CACHE_SECONDS per
  agent and page, so a page that many people watch costs one search per period.
- An indexer that fails is a message in the answer (`AlertsShown.error`), never an error
  page: the agent's state is still worth showing. Owners get a plain sentence; the detail
  (which never holds a secret) goes to the log and the admin.

With no enabled manager for the container's site, `container_security` is None and
nothing mentions Wazuh.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.cache import cache

from .client import Alert, AlertPage, IndexerClient, WazuhError, WazuhUnavailable
from .selectors import agent_for_container, manager_for_site

if TYPE_CHECKING:
    from containers.models import Container

    from .models import WazuhAgent, WazuhManager

log = logging.getLogger(__name__)

ALERTS_PAGE_SIZE = 20
# OpenSearch answers at most index.max_result_window (10,000) hits deep.
MAX_ALERTS_DEPTH = 10_000
MAX_ALERTS_PAGE = MAX_ALERTS_DEPTH // ALERTS_PAGE_SIZE
TOP_ALERTS_SIZE = 20
UNAVAILABLE = (
    "The Wazuh indexer is not answering right now; the recent alerts will show again "
    "when it is back."
)
REFUSED = "The Wazuh indexer refused the search (the portal's log says why): tell the operators."


@dataclass(frozen=True)
class AlertsShown:
    """One page of alerts, or why there is none (`error`)."""

    page: int
    page_size: int
    total: int = 0
    alerts: list[Alert] = field(default_factory=list)
    error: str = ""

    @property
    def pages(self) -> int:
        reachable = min(self.total, MAX_ALERTS_DEPTH)
        return max(1, math.ceil(reachable / self.page_size))

    @property
    def has_next(self) -> bool:
        return not self.error and self.page < self.pages

    @property
    def has_previous(self) -> bool:
        return self.page > 1


@dataclass(frozen=True)
class ContainerSecurity:
    """A container's agent (None: the portal has no agent of it) and a page of its alerts
    (None: no agent, or no indexer configured for the site)."""

    manager: WazuhManager
    agent: WazuhAgent | None
    alerts: AlertsShown | None


def _cached_search(key: str, search: Callable[[], AlertPage]) -> AlertPage:
    found = cache.get(key)
    if found is None:
        found = search()
        cache.set(key, found, settings.WAZUH_ALERTS_CACHE_SECONDS)
    assert isinstance(found, AlertPage)
    return found


def agent_alerts(manager: WazuhManager, agent_name: str, *, page: int = 1) -> AlertsShown:
    """A page of one agent's alerts, newest first (cached); an indexer error as a message."""
    page = min(max(page, 1), MAX_ALERTS_PAGE)
    size = ALERTS_PAGE_SIZE
    key = f"wazuh:alerts:{manager.pk}:{agent_name}:{page}:{size}"
    try:
        found = _cached_search(
            key,
            lambda: IndexerClient.for_manager(manager).alerts(
                agent_name, size=size, from_=(page - 1) * size
            ),
        )
    except WazuhUnavailable as exc:
        log.warning("wazuh: alerts of %s not read: %s", agent_name, exc)
        return AlertsShown(page=page, page_size=size, error=UNAVAILABLE)
    except WazuhError as exc:
        log.error("wazuh: alerts of %s refused: %s", agent_name, exc)
        return AlertsShown(page=page, page_size=size, error=REFUSED)
    return AlertsShown(page=page, page_size=size, total=found.total, alerts=found.alerts)


def container_security(container: Container, *, page: int = 1) -> ContainerSecurity | None:
    """The container's agent and a page of its alerts; None when its site has no Wazuh."""
    manager = manager_for_site(container.site_id)
    if manager is None:
        return None
    agent = agent_for_container(container)
    alerts = None
    if agent is not None and manager.has_indexer:
        alerts = agent_alerts(manager, agent.name, page=page)
    return ContainerSecurity(manager=manager, agent=agent, alerts=alerts)


def site_top_alerts(manager: WazuhManager) -> AlertsShown:
    """The site's highest-level recent alerts for the admin (cached): those of its
    containers' and nodes' agents, at or above WAZUH_TOP_ALERTS_MIN_LEVEL. An error is the
    client's own message (operators may read where and why)."""
    from networking.models import Node

    from .selectors import agents_of_site

    min_level = settings.WAZUH_TOP_ALERTS_MIN_LEVEL
    names = sorted(
        {
            *agents_of_site(manager.site_id).values_list("name", flat=True),
            *Node.objects.filter(site_id=manager.site_id).values_list("name", flat=True),
        }
    )
    shown = AlertsShown(page=1, page_size=TOP_ALERTS_SIZE)
    if not manager.has_indexer or not names:
        return shown
    digest = hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]
    key = f"wazuh:top:{manager.pk}:{min_level}:{digest}"
    try:
        found = _cached_search(
            key,
            lambda: IndexerClient.for_manager(manager).site_top_alerts(
                min_level=min_level, size=TOP_ALERTS_SIZE, agent_names=names
            ),
        )
    except (WazuhError, WazuhUnavailable) as exc:
        return AlertsShown(page=1, page_size=TOP_ALERTS_SIZE, error=str(exc))
    return AlertsShown(page=1, page_size=TOP_ALERTS_SIZE, total=found.total, alerts=found.alerts)
