"""Writes of the portal's agent records (`WazuhAgent`), as the create and delete jobs'
Wazuh steps make them (containers/jobs/wazuh.py). Each is atomic, a conditional update
where it changes a state, and audited (actor: the system); none holds a secret.

States, as the steps leave them:
- enrolling: a row `pending` with the agent's name and groups, before the container is
  told anything (so a leftover of a lost worker is still the portal's to remove);
- enrolled: `agent_id` set (the manager's "001"), still `pending` until the status poll
  reads the manager's own state;
- not enrolled: `agent_id` blank and `last_error` saying why (no agent in the template,
  the manager refused, or could not be reached): the row stays, the sweep and the poll
  see it;
- removed: the manager forgot the agent (or never knew it); `removed_at` set;
- removal pending: the container is gone but the manager could not be told; the sweep
  removes the agent later (`last_error` says why).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from auth.audit import audit_record

from .models import AgentStatus, WazuhAgent
from .names import agent_name_for

if TYPE_CHECKING:
    from containers.models import Container

ERROR_MAX = 500  # WazuhAgent.last_error


def wazuh_agent_enrolling(*, container: Container, groups: list[str]) -> WazuhAgent:
    """The container's agent record, `pending`, before its enrolment: made, or the live one
    an earlier try of the same job made (a container's agent name never changes)."""
    name = agent_name_for(container)
    with transaction.atomic():
        live = (
            WazuhAgent.objects.select_for_update()
            .filter(container=container)
            .exclude(status=AgentStatus.REMOVED)
            .first()
        )
        if live is not None and live.name == name:
            if live.groups != groups:
                live.groups = list(groups)
                live.save(update_fields=["groups"])
            return live
        if live is not None:  # under another name: the manager may know it, the sweep will
            wazuh_agent_removal_pending(agent=live, reason=f"{container.hostname} enrols as {name}")
        agent = (
            WazuhAgent.objects.select_for_update()
            .filter(site_id=container.site_id, name=name)
            .first()
        ) or WazuhAgent(site_id=container.site_id, name=name)
        agent.container = container
        agent.groups = list(groups)
        agent.status = AgentStatus.PENDING
        agent.agent_id, agent.last_error = "", ""
        agent.removed_at, agent.enrolled_at = None, timezone.now()
        agent.full_clean(exclude=["site", "container"], validate_constraints=False)
        agent.save()
        audit_record(
            actor=None,
            action="wazuh_agent.create",
            obj=agent,
            summary=f"recorded the Wazuh agent {name} of {container.hostname} "
            f"(groups {', '.join(groups)})",
            changes={"container": container.hostname, "groups": list(groups)},
        )
    return agent


def wazuh_agent_enrolled(*, agent: WazuhAgent, agent_id: str) -> None:
    """The container's agent holds a key from the manager: its id is known."""
    now = timezone.now()
    with transaction.atomic():
        WazuhAgent.objects.filter(pk=agent.pk).exclude(status=AgentStatus.REMOVED).update(
            agent_id=agent_id[:16], enrolled_at=now, last_error=""
        )
        audit_record(
            actor=None,
            action="wazuh_agent.enrol",
            obj=agent,
            summary=f"enrolled the Wazuh agent {agent.name} (id {agent_id or 'unknown'})",
            changes={"agent_id": agent_id},
        )
    agent.agent_id, agent.enrolled_at, agent.last_error = agent_id[:16], now, ""


def wazuh_agent_not_enrolled(*, agent: WazuhAgent, reason: str, final: bool = True) -> None:
    """The enrolment did not happen (yet): `reason` is kept for the poll and the sweep.
    `final`: the job gave up (audited); otherwise only noted before a retry."""
    reason = reason[:ERROR_MAX]
    with transaction.atomic():
        WazuhAgent.objects.filter(pk=agent.pk).exclude(status=AgentStatus.REMOVED).update(
            last_error=reason
        )
        if final:
            audit_record(
                actor=None,
                action="wazuh_agent.not_enrolled",
                obj=agent,
                summary=f"the Wazuh agent {agent.name} is not enrolled: {reason}",
                changes={"last_error": reason},
            )
    agent.last_error = reason


def wazuh_agent_removed(*, agent: WazuhAgent, detail: str) -> bool:
    """The manager forgot the agent (`detail`: how it was found); False if the row was
    already removed."""
    now = timezone.now()
    with transaction.atomic():
        changed = (
            WazuhAgent.objects.filter(pk=agent.pk)
            .exclude(status=AgentStatus.REMOVED)
            .update(
                status=AgentStatus.REMOVED, removed_at=now, status_updated_at=now, last_error=""
            )
        )
        if changed:
            audit_record(
                actor=None,
                action="wazuh_agent.remove",
                obj=agent,
                summary=f"removed the Wazuh agent {agent.name}: {detail}"[:500],
                changes={"agent_id": agent.agent_id, "detail": detail},
            )
    if changed:
        agent.status, agent.removed_at, agent.last_error = AgentStatus.REMOVED, now, ""
    return bool(changed)


def wazuh_agent_removal_pending(*, agent: WazuhAgent, reason: str) -> None:
    """The container is gone but its agent is still on the manager (or may be): a leftover
    for the sweep, with `reason`."""
    reason = reason[:ERROR_MAX]
    now = timezone.now()
    with transaction.atomic():
        changed = (
            WazuhAgent.objects.filter(pk=agent.pk)
            .exclude(status=AgentStatus.REMOVED)
            .update(status=AgentStatus.REMOVAL_PENDING, status_updated_at=now, last_error=reason)
        )
        if changed:
            audit_record(
                actor=None,
                action="wazuh_agent.removal_pending",
                obj=agent,
                summary=f"left the Wazuh agent {agent.name} for the sweep: {reason}"[:500],
                changes={"last_error": reason},
            )
    if changed:
        agent.status, agent.last_error = AgentStatus.REMOVAL_PENDING, reason
