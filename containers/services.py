"""Every write to containers and jobs: keyword-only, typed, atomic, domain errors only."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from auth.audit import audit_record
from auth.selectors import require_container_permission
from networking.models import RouteAccess, Site
from networking.services import container_network_allocate, container_network_release
from portal.errors import (
    Conflict,
    ErrorCode,
    FieldErrors,
    InvalidState,
    PermissionDenied,
    ValidationFailed,
)

from . import allocation, quotas
from .allocation import forget_proxmox_vmids, proxmox_used_vmids
from .deploy_sources import source_discard
from .models import (
    ACTIVE_JOB_STATUSES,
    CONTAINER_TRANSITIONS,
    Container,
    ContainerStatus,
    Deployment,
    DeploymentState,
    Job,
    JobKind,
    JobStatus,
    Template,
)
from .pool import claim as pool_claim
from .pool.services import pool_vmids
from .resources import Resources
from .validation import CreateInput, check_resources, container_create_check

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from .pool.models import PoolMember

log = logging.getLogger(__name__)


# -- status ----------------------------------------------------------------------------
def container_set_status(*, container: Container, to: str, message: str = "") -> bool:
    """Move a container to `to` if its current status allows it (a conditional update)."""
    allowed_from = [s for s, targets in CONTAINER_TRANSITIONS.items() if to in targets]
    now = timezone.now()
    extra: dict[str, Any] = {}
    if to == ContainerStatus.RUNNING:
        extra["running_since"] = now
    elif to in (ContainerStatus.STOPPED, ContainerStatus.ERROR):
        extra["running_since"] = None
    elif to == ContainerStatus.DELETED:
        extra.update(deleted_at=now, running_since=None)
    with transaction.atomic():
        updated = Container.objects.filter(pk=container.pk, status__in=allowed_from).update(
            status=to, status_message=message[:500], updated_at=now, **extra
        )
        if updated and to == ContainerStatus.DELETED:
            # Its routes and ports go with it (and the gateway is asked to drop them), and
            # its VMID and address are the first to hand out again.
            container_network_release(container=container)
            allocation.release_container(container)
            _deployments_lose(container)
    if updated:
        container.status = to
        container.status_message = message[:500]
        for key, value in extra.items():
            setattr(container, key, value)
    else:
        container.refresh_from_db(fields=["status", "status_message"])
        if container.status != to:
            log.warning("container %s: no transition %s -> %s", container.pk, container.status, to)
    return bool(updated)


def _deployments_lose(container: Container) -> None:
    """A deleted container's deployment: removed when that was asked for; otherwise failed
    (its create failed, or someone deleted the container), and the next push makes another."""
    mine = Deployment.objects.filter(container=container)
    mine.filter(state=DeploymentState.REMOVING).update(
        state=DeploymentState.REMOVED, updated_at=timezone.now()
    )
    mine.exclude(state=DeploymentState.REMOVED).update(
        state=DeploymentState.FAILED,
        serving_commit="",
        state_message=f"its container {container.hostname} was deleted; the next push makes another",
        updated_at=timezone.now(),
    )


# -- jobs --------------------------------------------------------------------------------
def job_create(
    *,
    kind: str,
    container: Container,
    actor: User | None,
    params: dict[str, Any] | None = None,
    new_container: bool = False,
) -> Job:
    """Create a queued job and enqueue it once the surrounding transaction commits.

    `new_container`: the container was inserted in this transaction, so no other job
    can be active on it and the insert needs no savepoint to report a conflict."""
    from .jobs import kind_of
    from .tasks import enqueue_job

    job = Job(
        kind=kind,
        container=container,
        actor=actor,
        params=params or {},
        steps=kind_of(kind).plan(params or {}, container),
        heartbeat_at=timezone.now(),
    )
    if new_container:
        job.save(force_insert=True)
        job_id = str(job.id)
        transaction.on_commit(lambda: enqueue_job(job_id))
        return job
    try:
        with transaction.atomic():
            job.save(force_insert=True)
    except IntegrityError as exc:
        active = container.jobs.filter(status__in=ACTIVE_JOB_STATUSES).first()
        what = f"a {active.kind} job ({active.id})" if active else "another job"
        raise Conflict(
            f"{container.hostname} already has {what} in progress; wait for it to finish",
            code=ErrorCode.JOB_IN_PROGRESS,
        ) from exc
    job_id = str(job.id)
    transaction.on_commit(lambda: enqueue_job(job_id))
    return job


def job_cancel(*, job: Job, actor: User | None) -> bool:
    """Cancel a job that has not started; a create (or a deployment's first push) that never
    ran releases its container, and a push's uploaded source goes."""
    with transaction.atomic():
        updated = Job.objects.filter(pk=job.pk, status=JobStatus.QUEUED, attempts=0).update(
            status=JobStatus.CANCELLED,
            finished_at=timezone.now(),
            error="cancelled before it started",
        )
        # A create, or a deployment's first push (its deploy job makes the container).
        creates = job.kind == JobKind.CREATE or bool((job.params or {}).get("create"))
        if updated and creates and job.container:
            pool_claim.claim_cancelled(job)
            container_set_status(
                container=job.container, to=ContainerStatus.DELETED, message="creation cancelled"
            )
    if updated and job.kind == JobKind.DEPLOY:
        source_discard((job.params or {}).get("source", ""))
    return bool(updated)


# -- lifecycle ---------------------------------------------------------------------------
def container_create(
    *,
    owner: User,
    hostname: str,
    template: Template,
    site: Site | None = None,
    cores: int | None = None,
    memory_mib: int | None = None,
    swap_mib: int | None = None,
    disk_gib: int | None = None,
    ssh_public_keys: str = "",
    description: str = "",
    route_access: str = RouteAccess.USERS,
    route_port: int = 80,
    actor: User | None = None,
    deploy: dict[str, Any] | None = None,
) -> Job:
    """Validate, place and allocate a new container, and queue the job that builds it.

    `deploy`: the params of a LaunchPad deploy (containers.deployments) that the same job
    carries out once the container runs: one job, the create's steps then the deploy's.

    Every input error is reported at once (validation.container_create_check). The
    owner's quota is checked in the same transaction; without SSH keys, the owner's
    profile keys are used. Its web address is for `route_access` (signed-in portal
    users unless the owner chose otherwise), to its port `route_port` (a deploy's app
    port, so that publishing the app changes nothing and needs no second gateway
    apply). Only staff may create a container for someone else.
    """
    if actor is not None and actor.pk != owner.pk and not actor.is_staff:
        raise PermissionDenied("only staff may create a container for someone else")
    site = site or template.site
    checked = container_create_check(
        owner=owner,
        hostname=hostname,
        template=template,
        site=site,
        cores=cores,
        memory_mib=memory_mib,
        swap_mib=swap_mib,
        disk_gib=disk_gib,
        ssh_public_keys=ssh_public_keys,
        route_access=route_access,
    )
    description = " ".join(description.split())[:255]
    foreign = proxmox_used_vmids(site) | pool_vmids(site)  # outside the lock: network
    try:
        with transaction.atomic():
            member = pool_claim.member_take(
                site=site, template=template, disk_gib=checked.resources.disk_gib
            )
            container, generation = _allocate(
                site,
                member=member,
                owner=owner,
                template=template,
                checked=checked,
                description=description,
                foreign=foreign,
                route_port=route_port,
                # A deployment's container goes with its deployment (its own expiry).
                expires_at=None if deploy else default_expiry(template, site),
            )
            return _queue_build(
                container,
                checked=checked,
                owner=owner,
                actor=actor or owner,
                deploy=deploy,
                generation=generation,
                pool=pool_claim.claimed(container, member),
            )
    except ValidationError as exc:
        raise ValidationFailed("; ".join(exc.messages)) from exc
    except IntegrityError as exc:
        # The lock makes this unreachable in practice; never let it reach a user raw.
        raise Conflict(
            "another request took the same name or address; try again",
            code=ErrorCode.ALLOCATION_CONFLICT,
        ) from exc


def default_expiry(template: Template, site: Site) -> datetime | None:
    """A new container's expiry: the template's TTL, else the site's, else the setting's."""
    days = (
        template.container_ttl_days
        or site.container_ttl_days
        or settings.CONTAINER_DEFAULT_TTL_DAYS
    )
    return timezone.now() + timedelta(days=days) if days else None


def _allocate(
    site: Site,
    *,
    owner: User,
    template: Template,
    checked: CreateInput,
    description: str,
    foreign: frozenset[int],
    route_port: int = 80,
    expires_at: datetime | None = None,
    member: PoolMember | None = None,
) -> tuple[Container, int]:
    """Lock the site's row, check the name and the quota, choose the new container's
    VMID, node, address and MAC, and insert it with its default route and SSH port;
    the container and the gateway generation that publishes it.
    Inside the create's transaction.

    The site's row lock serialises allocation for the site: VMIDs, addresses and names
    are chosen and inserted while no one else can choose.
    """
    site = Site.objects.select_for_update().get(pk=site.pk)
    hostname, res = checked.hostname, checked.resources
    # Each by an indexed query (containers.allocation), not by reading the site's containers.
    allocation.require_free_hostname(site, hostname)
    quotas.check(owner, new=res)
    vmid, node = pool_claim.placement(member) or allocation.next_vmid(site, skip=foreign)
    ip, mac = allocation.next_address(site)
    container = Container(
        site=site,
        node=node,
        vmid=vmid,
        hostname=hostname,
        owner=owner,
        template=template,
        cores=res.cores,
        memory_mib=res.memory_mib,
        swap_mib=res.swap_mib,
        disk_gib=res.disk_gib,
        ip=ip,
        mac=mac,
        ssh_public_keys=checked.ssh_public_keys,
        description=description,
        expires_at=expires_at,
    )
    # Field validation only: the related rows were just read, and the lock plus the
    # checks above (and the database's constraints) keep the values unique.
    container.full_clean(
        exclude=["site", "node", "owner", "template"],
        validate_unique=False,
        validate_constraints=False,
    )
    container.save(force_insert=True)
    # Its default route and SSH port, under the same site lock.
    network = container_network_allocate(
        container=container, access=checked.route_access, http_port=route_port
    )
    return container, network.generation


def _queue_build(
    container: Container,
    *,
    checked: CreateInput,
    owner: User,
    actor: User,
    deploy: dict[str, Any] | None = None,
    generation: int = 0,
    pool: dict[str, Any] | None = None,
) -> Job:
    """The new container's create (or create-and-deploy) job, and its audit entry."""
    res = checked.resources
    # route_access: a retry of a failed create keeps the owner's choice.
    # gateway_generation: the apply its gateway step waits for (containers.jobs.steps).
    params: dict[str, Any] = {
        "hostname": container.hostname,
        "route_access": checked.route_access,
        "gateway_generation": generation,
    }
    params.update(res.as_params(), **(pool or {}))  # pool: a claimed member (pool.claim)
    if deploy is not None:
        params.update(deploy, create=True)
    job = job_create(
        kind=JobKind.DEPLOY if deploy is not None else JobKind.CREATE,
        container=container,
        actor=actor,
        params=params,
        new_container=True,
    )
    audit_record(
        actor=actor,
        action="container.create",
        obj=container,
        summary=f"created {container.hostname} (CT {container.vmid} on "
        f"{container.node.name}{', from the pool' if pool else ''}) for {owner.get_username()}",
        changes={
            "owner": owner.get_username(),
            "job": str(job.pk),
            "route_access": checked.route_access,
            **res.as_params(),
        },
    )
    return job


def container_reassign_vmid(*, container: Container, taken: int) -> Container:
    """Give a container another VMID (and so maybe another node): Proxmox uses `taken`."""
    forget_proxmox_vmids(container.site)
    foreign = set(proxmox_used_vmids(container.site)) | {taken}
    with transaction.atomic():
        site = Site.objects.select_for_update().get(pk=container.site_id)
        # Its own VMID counts as used (it is live), so it is not chosen again; the pool's
        # members' are skipped with the cluster's.
        vmid, node = allocation.next_vmid(site, skip=foreign | pool_vmids(site))
        Container.objects.filter(pk=container.pk).update(
            vmid=vmid, node=node, updated_at=timezone.now()
        )
        allocation.release_vmid(container, container.vmid)
    container.vmid, container.node = vmid, node
    return container


def require_status(container: Container, allowed: tuple[str, ...], action: str) -> None:
    if container.status not in allowed:
        raise InvalidState(
            f"cannot {action} {container.hostname} while it is {container.status}",
        )


def _power_job(container: Container, actor: User | None, kind: str) -> Job:
    """Start, stop or restart: check who and when, queue the job, audit the request."""
    from .jobs import kind_of

    require_container_permission(actor, container, kind)
    require_status(container, kind_of(kind).start_from, kind)
    with transaction.atomic():
        job = job_create(kind=kind, container=container, actor=actor)
        audit_record(
            actor=actor,
            action=f"container.{kind}",
            obj=container,
            summary=f"asked to {kind} {container.hostname}",
            changes={"job": str(job.pk)},
        )
        return job


def container_start(*, container: Container, actor: User | None) -> Job:
    return _power_job(container, actor, JobKind.START)


def container_stop(*, container: Container, actor: User | None) -> Job:
    return _power_job(container, actor, JobKind.STOP)


def container_restart(*, container: Container, actor: User | None) -> Job:
    return _power_job(container, actor, JobKind.RESTART)


def container_resize(
    *,
    container: Container,
    actor: User | None,
    cores: int | None = None,
    memory_mib: int | None = None,
    swap_mib: int | None = None,
    disk_gib: int | None = None,
) -> Job:
    """Change cores, memory and swap (online) and grow the disk; shrinking a disk is refused.

    Owner or staff only; the owner's quota is checked for what grows."""
    from .jobs import kind_of

    require_container_permission(actor, container, "resize")
    require_status(container, kind_of(JobKind.RESIZE).start_from, "resize")
    current = Resources.of(container)
    res = current.replaced(cores=cores, memory_mib=memory_mib, swap_mib=swap_mib, disk_gib=disk_gib)
    errors = FieldErrors()
    with errors.collect():
        check_resources(container.template, res)
    if res.disk_gib < container.disk_gib and not errors.has("disk_gib"):
        errors.add(
            f"disks only grow: {container.hostname} has {container.disk_gib} GiB, {res.disk_gib} GiB asked",
            code=ErrorCode.INVALID_RESOURCES,
            field="disk_gib",
        )
    errors.raise_if_any()
    if res == current:
        raise ValidationFailed(
            "nothing to change: these are the current resources", code=ErrorCode.NO_CHANGE
        )
    with transaction.atomic():
        quotas.check(
            container.owner,
            new=res,
            current=container,
        )
        job = job_create(
            kind=JobKind.RESIZE, container=container, actor=actor, params=res.as_params()
        )
        audit_record(
            actor=actor,
            action="container.resize",
            obj=container,
            summary=f"asked to resize {container.hostname}: "
            + ", ".join(
                f"{k} {getattr(current, k)} -> {v}"
                for k, v in res.as_params().items()
                if getattr(current, k) != v
            ),
            changes={"job": str(job.pk), **res.as_params()},
        )
        return job


def container_apply_resources(
    *, container: Container, cores: int, memory_mib: int, swap_mib: int, disk_gib: int
) -> None:
    Container.objects.filter(pk=container.pk).update(
        cores=cores,
        memory_mib=memory_mib,
        swap_mib=swap_mib,
        disk_gib=disk_gib,
        updated_at=timezone.now(),
    )
    container.cores, container.memory_mib = cores, memory_mib
    container.swap_mib, container.disk_gib = swap_mib, disk_gib


def lock_for_delete(container: Container) -> None:
    """Lock the container's row (and re-read its status) before marking it deleting.

    The lock route and port changes take (networking.publishing.lock_changeable_container):
    a change under way commits first and is released with the container; every later one
    sees `deleting` and is refused.
    """
    container.status = (
        Container.objects.select_for_update()
        .filter(pk=container.pk)
        .values_list("status", flat=True)
        .get()
    )


def container_delete(*, container: Container, actor: User | None) -> Job:
    """Queue the removal of a container (owner or staff); its row stays, as history."""
    require_container_permission(actor, container, "delete")
    with transaction.atomic():
        lock_for_delete(container)
        if container.status in (ContainerStatus.DELETED, ContainerStatus.DELETING):
            raise InvalidState(f"{container.hostname} is already {container.status}")
        job = job_create(kind=JobKind.DELETE, container=container, actor=actor)
        container_set_status(container=container, to=ContainerStatus.DELETING)
        audit_record(
            actor=actor,
            action="container.delete",
            obj=container,
            summary=f"asked to delete {container.hostname} (CT {container.vmid})",
            changes={"job": str(job.pk)},
        )
    return job


# -- operator actions ------------------------------------------------------------------------
def job_retry(*, job: Job, actor: User | None) -> Job:
    """Queue a new job of a failed job's kind and params, for the same container.

    The kind says who may, from which states, and what else a retry of it takes."""
    from .jobs import kind_of

    if job.status != JobStatus.FAILED:
        raise InvalidState(f"only a failed job can be retried; job {job.pk} is {job.status}")
    container = job.container
    if container is None:
        raise InvalidState(f"job {job.pk} has no container to retry it on")
    container.refresh_from_db()
    kind = kind_of(job.kind)
    require_container_permission(actor, container, kind.permission)
    kind.check_retry(job, container)
    require_status(container, kind.retry_from, f"retry a {job.kind} job of")
    with transaction.atomic():
        kind.retrying(job, container)
        params = dict(job.params or {})
        params.pop("gateway_generation", None)  # a retry asks the gateway anew
        new = job_create(kind=job.kind, container=container, actor=actor, params=params)
        kind.retried(container)
        audit_record(
            actor=actor,
            action="job.retry",
            obj=container,
            summary=f"retried the failed {job.kind} job {job.pk} of {container.hostname}",
            changes={"job": str(new.pk), "retry_of": str(job.pk)},
        )
    return new
