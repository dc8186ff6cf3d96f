"""Node health: a node that does not answer is marked offline, and active again when it does.

The portal learns it on its own, two ways:
- a job's call fails with the node unreachable (595/596, no quorum, a refused
  connection) and one probe of the node confirms it (a single blip is only retried);
- the beat task `containers.probe_nodes` calls GET /nodes/{node}/status once per node,
  and keeps the capacity and load that answer holds (containers/node_load.py).

Only active <-> offline is ever flipped here, by conditional updates: a node an
operator put in maintenance stays in maintenance. An offline node is skipped by
placement (its slot, as for maintenance), and jobs for its containers wait for it
without spending their attempts (`hold_job`), up to NODE_DOWN_WAIT_MAX seconds.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from auth.audit import audit_record
from networking.models import Node, NodeState
from portal.errors import ErrorCode

from .models import Job, JobStatus
from .node_load import record_probe
from .proxmox import ProxmoxClient, ProxmoxError, ProxmoxUnavailable

if TYPE_CHECKING:
    from .jobs.context import JobContext

log = logging.getLogger(__name__)

WAIT_MESSAGE = "waiting for {node}: it is not answering ({reason}) since {since}"


class NodeUnavailable(ProxmoxUnavailable):
    """A job gave up on a node that stayed down; the message names it."""

    code = ErrorCode.NODE_UNAVAILABLE


def is_node_down(exc: BaseException) -> bool:
    return isinstance(exc, ProxmoxUnavailable) and exc.unreachable


def not_answering(node: Node, reason: str) -> str:
    return f"{node.name} is not answering ({reason})"


def ask(node: Node) -> tuple[str | None, dict[str, Any] | None]:
    """One GET /nodes/{node}/status: (why it did not answer, None), or (None, its status),
    or (None, None) if it answered with a refusal (a token problem is not an outage)."""
    try:
        return None, ProxmoxClient.for_node(node).node_status(node.name)
    except ProxmoxUnavailable as exc:
        return exc.reason, None
    except ProxmoxError:
        return None, None


def probe(node: Node) -> str | None:
    """One call to the node: None if it answers, else why not ("595 Connection refused")."""
    return ask(node)[0]


@transaction.atomic
def node_mark_offline(*, node: Node, reason: str) -> bool:
    """Mark an active node offline (True if this call did it); refresh the reason if it was."""
    now = timezone.now()
    reason = reason[:300]
    changed = Node.objects.filter(pk=node.pk, state=NodeState.ACTIVE).update(
        state=NodeState.OFFLINE, offline_since=now, offline_reason=reason, updated_at=now
    )
    if changed:
        log.warning("node %s is offline: %s", node.name, reason)
        audit_record(
            actor=None,
            actor_name="portal",
            action="node.offline",
            obj=node,
            summary=f"{not_answering(node, reason)}; marked offline",
            changes={"state": NodeState.OFFLINE, "reason": reason},
        )
    else:
        # Already offline: `updated_at` is when it was last found down (see hold_job).
        Node.objects.filter(pk=node.pk, state=NodeState.OFFLINE).update(
            offline_reason=reason, updated_at=now
        )
    node.refresh_from_db(fields=["state", "offline_since", "offline_reason"])
    return bool(changed)


@transaction.atomic
def node_mark_active(*, node: Node) -> bool:
    """Mark an offline node active again (True if this call did it) and wake its waiting jobs."""
    since = node.offline_since
    changed = Node.objects.filter(pk=node.pk, state=NodeState.OFFLINE).update(
        state=NodeState.ACTIVE, offline_since=None, offline_reason="", updated_at=timezone.now()
    )
    if changed:
        log.warning("node %s answers again", node.name)
        audit_record(
            actor=None,
            actor_name="portal",
            action="node.online",
            obj=node,
            summary=f"{node.name} answers again (offline since {since}); marked active",
            changes={"state": NodeState.ACTIVE},
        )
        transaction.on_commit(lambda: _wake_jobs(node))
    node.refresh_from_db(fields=["state", "offline_since", "offline_reason"])
    return bool(changed)


def _wake_jobs(node: Node) -> None:
    """Send the node's waiting jobs now, not at their next retry (the claim runs each once)."""
    from .tasks import enqueue_job

    waiting = Job.objects.filter(status=JobStatus.QUEUED, container__node=node)
    for pk in waiting.values_list("pk", flat=True):
        enqueue_job(str(pk))


def node_check(*, node: Node) -> str:
    """Probe one node and record the answer; return its state (maintenance is left alone)."""
    if node.state == NodeState.MAINTENANCE:
        return node.state
    reason, status = ask(node)
    # Recorded whatever the answer (/readyz and /metrics report how old `state` is), with
    # the figures of the status when the node gave it.
    record_probe(node=node, at=timezone.now(), status=status)
    if reason is None:
        node_mark_active(node=node)
    else:
        node_mark_offline(node=node, reason=reason)
    return node.state


def probe_nodes() -> dict[str, str]:
    """The beat probe: one call per node that is not in maintenance."""
    states = {}
    for node in Node.objects.exclude(state=NodeState.MAINTENANCE).order_by("site_id", "slot"):
        states[f"{node.site_id}/{node.name}"] = node_check(node=node)
    return states


# -- jobs ------------------------------------------------------------------------------------
def confirm_down(ctx: JobContext, exc: ProxmoxUnavailable) -> bool:
    """A job's call said the node is unreachable: probe once, and mark it offline if so."""
    node = ctx.container.node
    reason = probe(node)
    if reason is None:
        return False  # it answers: a blip, retried as usual
    node_mark_offline(node=node, reason=exc.reason)
    return True


def hold_job(ctx: JobContext) -> float | None:
    """If the job's node is offline: seconds to wait before looking again (None: go ahead).

    The node is probed first unless it was found down less than a probe interval ago,
    so a job is never held by a stale mark and a crowd of waiting jobs makes no crowd of
    calls. A job that has waited longer than NODE_DOWN_WAIT_MAX raises NodeUnavailable
    naming the node.
    """
    node = ctx.container.node
    node.refresh_from_db(fields=["state", "offline_since", "offline_reason", "updated_at"])
    if node.state != NodeState.OFFLINE:
        return None
    interval = float(settings.NODE_PROBE_INTERVAL)
    # Found down a moment ago: trusted, so a crowd of waiting jobs makes no crowd of calls.
    recent = timezone.now() - node.updated_at < timedelta(seconds=interval)
    found = None if recent else probe(node)
    if not recent and found is None:
        node_mark_active(node=node)
        ctx.log(f"{node.name} answers again")
        return None
    reason = found or node.offline_reason
    if found:
        node_mark_offline(node=node, reason=found)
    since = node.offline_since or timezone.now()
    waited = timezone.now() - max(since, ctx.job.created_at)
    if waited > timedelta(seconds=settings.NODE_DOWN_WAIT_MAX):
        raise NodeUnavailable(
            f"{not_answering(node, reason)}; waited {int(waited.total_seconds())} s for it",
            unreachable=True,
            reason=reason,
        )
    message = WAIT_MESSAGE.format(
        node=node.name, reason=reason, since=since.isoformat(timespec="seconds")
    )
    if not ctx.job.log_entries.filter(message=message).exists():
        ctx.log(message)  # once per outage, not once per look
    return interval
