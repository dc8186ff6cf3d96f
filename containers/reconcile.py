"""Reconciling one container with Proxmox: an operator's action (the admin's *Reconcile*).

It reads what Proxmox holds and records it. A container whose create failed without
learning whether Proxmox made the CT (marked `error`, still holding its allocations) is
settled here: the CT removed by a delete job if it is there and ours, the allocations
released at once if Proxmox answers it is absent, and nothing changed if Proxmox cannot
be asked. A create that had claimed a warm-pool member settles that member too
(`pool.claim.claim_settle`; the delete job does it for a CT it removes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import transaction

from auth.audit import audit_record
from auth.selectors import require_container_permission
from portal.errors import ErrorCode, InvalidState, UpstreamError, UpstreamUnavailable

from .models import (
    ACTIVE_JOB_STATUSES,
    POWER_STATES,
    Container,
    ContainerStatus,
    Job,
    JobKind,
    JobStatus,
)
from .pool.claim import claim_settle
from .services import container_set_status, job_create, lock_for_delete
from .tags import is_ours

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def container_reconcile(*, container: Container, actor: User | None) -> str:
    """Read the CT's status from Proxmox and record it; a CT Proxmox lacks is marked error.

    Returns what was found, in words. Refused while a job is working on the container."""
    from .proxmox import ProxmoxClient, ProxmoxNotFound

    container.refresh_from_db()
    if container.status == ContainerStatus.DELETED:
        raise InvalidState(f"{container.hostname} is deleted")
    active = container.jobs.filter(status__in=ACTIVE_JOB_STATUSES).first()
    if active is not None:
        raise InvalidState(
            f"{container.hostname} has a {active.kind} job ({active.pk}) in progress; "
            "reconcile once it has finished",
        )
    if container.status == ContainerStatus.ERROR and create_never_finished(container):
        return _reconcile_unfinished_create(container, actor)
    before = container.status
    try:
        state = str(
            ProxmoxClient.for_node(container.node)
            .container_status(container.node.name, container.vmid)
            .get("status", "")
        )
    except ProxmoxNotFound:
        state = "missing"
        target: str = ContainerStatus.ERROR
        message = f"CT {container.vmid} was not found on {container.node.name}"
    else:
        known = POWER_STATES.get(state)
        message = "" if known else f"Proxmox reports CT {container.vmid} as {state!r}"
        target = known or ContainerStatus.ERROR
    moved = target == before or container_set_status(
        container=container, to=target, message=message
    )
    if not moved:
        raise InvalidState(
            f"{container.hostname} is {before} and Proxmox says {state}; "
            f"the portal cannot move it to {target}",
        )
    outcome = f"{container.hostname}: {state} on Proxmox" + (
        f", {before} -> {target}" if target != before else ", unchanged"
    )
    audit_record(
        actor=actor,
        action="container.reconcile",
        obj=container,
        summary=outcome,
        changes={"before": before, "after": target, "proxmox": state},
    )
    return outcome


def create_never_finished(container: Container) -> bool:
    creates = container.jobs.filter(kind=JobKind.CREATE)
    return (
        creates.filter(status=JobStatus.FAILED).exists()
        and not creates.filter(status=JobStatus.SUCCEEDED).exists()
    )


def _reconcile_unfinished_create(container: Container, actor: User | None) -> str:
    """A create failed without learning whether Proxmox made the CT: ask, then settle it.

    Ours on Proxmox: a delete job removes it and then releases the allocations. Absent
    (or the VMID holds a guest the portal does not manage): released now. No answer:
    nothing changes, and the error says so.
    """
    from .proxmox import ProxmoxClient, ProxmoxNotFound

    node, vmid = container.node.name, container.vmid
    try:
        config: dict[str, Any] | None = ProxmoxClient.for_node(container.node).container_config(
            node, vmid
        )
    except ProxmoxNotFound:
        config = None
    except UpstreamError as exc:
        raise UpstreamUnavailable(
            f"{container.hostname}: the portal could not check whether CT {vmid} exists on "
            f"{node} ({exc}); nothing changed, it keeps its name and address",
            code=ErrorCode.PROXMOX_UNAVAILABLE,
        ) from exc
    if config is not None and is_ours(config, container):
        with transaction.atomic():
            lock_for_delete(container)
            job = job_create(kind=JobKind.DELETE, container=container, actor=actor)
            container_set_status(container=container, to=ContainerStatus.DELETING)
        outcome = (
            f"{container.hostname}: CT {vmid} exists on {node} from a create that failed; "
            f"delete job {job.pk} removes it, then releases its name and address"
        )
        after = ContainerStatus.DELETING
    else:
        found = "absent" if config is None else "held by a guest the portal does not manage"
        release_failed_create(container=container, found=found)
        outcome = (
            f"{container.hostname}: CT {vmid} is {found} on {node}; "
            "its name and address are released"
        )
        # A failed claim's member (a CT left as the pool made it is "not ours" here).
        if settled := claim_settle(container):
            outcome += f"; {settled}"
        after = ContainerStatus.DELETED
    audit_record(
        actor=actor,
        action="container.reconcile",
        obj=container,
        summary=outcome,
        changes={"before": ContainerStatus.ERROR, "after": after, "proxmox": bool(config)},
    )
    return outcome


def release_failed_create(*, container: Container, found: str) -> None:
    """A create that failed left nothing of the portal's on Proxmox: free what it holds.

    `found` says what Proxmox answered ("absent", ...); only call this once it did."""
    with transaction.atomic():  # error -> deleting -> deleted: the usual way out
        lock_for_delete(container)
        container_set_status(container=container, to=ContainerStatus.DELETING)
        container_set_status(
            container=container,
            to=ContainerStatus.DELETED,
            message=f"creation failed; CT {container.vmid} {found} on {container.node.name} "
            "at reconcile",
        )


def container_mend(*, container: Container, actor: User | None, reason: str) -> Job:
    """Queue a `mend` job: Proxmox gets the portal's values back (staff or the system)."""
    require_container_permission(actor, container, "mend")
    with transaction.atomic():
        job = job_create(
            kind=JobKind.MEND, container=container, actor=actor, params={"reason": reason}
        )
        audit_record(
            actor=actor,
            actor_name="" if actor else "portal",
            action="container.mend",
            obj=container,
            summary=f"{container.hostname}: {reason}"[:300],
            changes={"job": str(job.pk)},
        )
    return job
