"""Collaborators: who besides its owner may see, start, stop and log into a container.

Each change is recorded at once in the portal and carried to the directory group and
the Proxmox ACL by an `access` job (containers/jobs/access.py). Keyword-only, typed,
atomic, domain errors only; each write records its audit entry here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction

from auth.audit import audit_record
from auth.models import Collaborator
from auth.selectors import require_container_permission
from auth.users import user_by_username
from portal.errors import Conflict, ErrorCode, InvalidState, NotFound, ValidationFailed

from .models import ACTIVE_JOB_STATUSES, ContainerStatus, JobKind
from .services import job_create

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from .models import Container, Job


def _require_access_change(container: Container) -> None:
    """What does not depend on the name is checked before the name is looked up."""
    if container.status not in (
        ContainerStatus.RUNNING,
        ContainerStatus.STOPPED,
        ContainerStatus.ERROR,
    ):
        raise InvalidState(
            f"cannot change who may use {container.hostname} while it is {container.status}",
        )
    active = container.jobs.filter(status__in=ACTIVE_JOB_STATUSES).first()
    if active is not None:
        raise Conflict(
            f"{container.hostname} already has a {active.kind} job ({active.id}) in progress; "
            "wait for it to finish",
            code=ErrorCode.JOB_IN_PROGRESS,
        )


def _access_job(container: Container, actor: User | None, params: dict[str, Any]) -> Job:
    _require_access_change(container)
    return job_create(kind=JobKind.ACCESS, container=container, actor=actor, params=params)


def collaborator_add(*, container: Container, username: str, actor: User | None) -> Job:
    """Let a user see, start, stop and open the container; the access job updates the
    directory group and the Proxmox ACL."""
    require_container_permission(actor, container, "manage_access")
    _require_access_change(container)
    try:
        user = user_by_username(username)
    except NotFound:
        audit_record(
            actor=actor,
            action="collaborator.add_refused",
            obj=container,
            summary=f"could not add '{(username or '').strip()[:100]}' as a collaborator",
        )
        raise
    if user.pk == container.owner_id:
        raise ValidationFailed(
            f"{user.username} owns {container.hostname} already",
            code=ErrorCode.IS_OWNER,
            field="username",
        )
    try:
        with transaction.atomic():
            Collaborator.objects.create(container=container, user=user, added_by=actor)
            job = _access_job(container, actor, {"added": [user.username]})
            audit_record(
                actor=actor,
                action="collaborator.add",
                obj=container,
                summary=f"added {user.username} as a collaborator",
                changes={"collaborator": user.username, "job": str(job.pk)},
            )
    except IntegrityError as exc:
        raise Conflict(
            f"{user.username} is already a collaborator on {container.hostname}",
            code=ErrorCode.ALREADY_COLLABORATOR,
            field="username",
        ) from exc
    return job


def collaborator_remove(*, container: Container, username: str, actor: User | None) -> Job:
    """Take a collaborator's access away: at once in the portal, then in the directory and
    on Proxmox through the access job."""
    require_container_permission(actor, container, "manage_access")
    with transaction.atomic():
        row = (
            Collaborator.objects.select_related("user")
            .filter(container=container, user__username__iexact=(username or "").strip())
            .first()
        )
        if row is None:
            raise NotFound(
                f"{username} is not a collaborator on {container.hostname}",
                code=ErrorCode.NOT_COLLABORATOR,
                field="username",
            )
        name = row.user.username
        row.delete()
        job = _access_job(container, actor, {"removed": [name]})
        audit_record(
            actor=actor,
            action="collaborator.remove",
            obj=container,
            summary=f"removed collaborator {name}",
            changes={"collaborator": name, "job": str(job.pk)},
        )
    return job


def container_access_sync(*, container: Container, actor: User | None) -> Job:
    """Make the directory group and the Proxmox ACLs match the portal again (re-run)."""
    require_container_permission(actor, container, "manage_access")
    with transaction.atomic():
        job = _access_job(container, actor, {"resync": True})
        audit_record(
            actor=actor,
            action="container.access_sync",
            obj=container,
            summary="asked for the access group and Proxmox ACLs to be synced",
            changes={"job": str(job.pk)},
        )
    return job
