"""Reads of the Wazuh feature: is it on for a site, and the portal's agent records."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from .models import POLLED_STATUSES, AgentStatus, WazuhAgent, WazuhManager
from .names import split_groups

if TYPE_CHECKING:
    from containers.models import Container, Template
    from networking.models import Node, Site


def manager_for_site(site: Site | int) -> WazuhManager | None:
    """The site's enabled Wazuh manager, or None: then the feature is off for the site and
    nothing (create, delete, pages, API, CLI) mentions Wazuh."""
    site_id = site if isinstance(site, int) else site.pk
    return WazuhManager.objects.filter(site_id=site_id, enabled=True).select_related("site").first()


def agent_groups_for(manager: WazuhManager, template: Template | None) -> list[str]:
    """The groups a new container's agent joins: its template's override, or the site's."""
    override = template.wazuh_group if template is not None else ""
    return split_groups(override or manager.default_group)


def agent_for_container(container: Container) -> WazuhAgent | None:
    """The container's agent that is not removed yet (at most one, by constraint)."""
    return (
        WazuhAgent.objects.filter(container=container).exclude(status=AgentStatus.REMOVED).first()
    )


def agents_of_site(site: Site | int) -> QuerySet[WazuhAgent]:
    """Every agent the portal enrolled in the site and has not seen removed."""
    site_id = site if isinstance(site, int) else site.pk
    return WazuhAgent.objects.filter(site_id=site_id).exclude(status=AgentStatus.REMOVED)


def agents_removal_pending(site: Site | int) -> QuerySet[WazuhAgent]:
    """Leftovers: agents of deleted containers the manager could not be told about."""
    site_id = site if isinstance(site, int) else site.pk
    return WazuhAgent.objects.filter(site_id=site_id, status=AgentStatus.REMOVAL_PENDING)


def agent_counts(site: Site | int) -> dict[str, int]:
    """The site's agents the poll watches, counted by status (one query)."""
    site_id = site if isinstance(site, int) else site.pk
    rows = (
        WazuhAgent.objects.filter(site_id=site_id, status__in=POLLED_STATUSES)
        .order_by()
        .values("status")
        .annotate(n=Count("pk"))
    )
    return {row["status"]: row["n"] for row in rows}


def wazuh_in_use() -> bool:
    """Whether any site has an enabled manager (the admin shows agent columns only then)."""
    return WazuhManager.objects.filter(enabled=True).exists()


def nodes_with_agents(queryset: QuerySet[Node]) -> QuerySet[Node]:
    """Nodes with their own agent and site's manager joined, annotated with their
    containers' agents: `wazuh_agents` (watched) and `wazuh_agents_active`, in the same
    query however many nodes are listed."""
    watched = (
        WazuhAgent.objects.filter(container__node=OuterRef("pk"), status__in=POLLED_STATUSES)
        .order_by()
        .values("container__node")
    )

    def total(count: Count) -> Coalesce:
        return Coalesce(
            Subquery(watched.annotate(n=count).values("n")), 0, output_field=IntegerField()
        )

    return queryset.select_related("wazuh_agent", "site__wazuh").annotate(
        wazuh_agents=total(Count("pk")),
        wazuh_agents_active=total(Count("pk", filter=Q(status=AgentStatus.ACTIVE))),
    )
