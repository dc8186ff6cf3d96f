"""Reads of the Wazuh feature: is it on for a site, and the portal's agent records."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import QuerySet

from .models import AgentStatus, WazuhAgent, WazuhManager
from .names import split_groups

if TYPE_CHECKING:
    from containers.models import Container, Template
    from networking.models import Site


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
