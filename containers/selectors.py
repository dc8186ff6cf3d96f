"""Reads: permission scoping and the joins list pages need."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from auth.selectors import visible_container_q
from portal.errors import NotFound

from .models import LIVE, Container, Job, JobLogEntry

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User


def containers_all(*, include_deleted: bool = False) -> QuerySet[Container]:
    """Every container, for operators (the CLI and the admin)."""
    qs = Container.objects.select_related("site", "node", "template", "owner")
    return qs if include_deleted else qs.filter(LIVE)


def containers_visible_to(
    user: User | AnonymousUser, *, include_deleted: bool = False
) -> QuerySet[Container]:
    """Staff see every container; others the ones they own or collaborate on."""
    qs = containers_all(include_deleted=include_deleted)
    if getattr(user, "is_staff", False):
        return qs
    if not user.is_authenticated:
        return qs.none()
    return qs.filter(visible_container_q(user))


def container_get(
    user: User | AnonymousUser,
    *,
    hostname: str | None = None,
    pk: int | None = None,
    site_slug: str | None = None,
) -> Container:
    """One container the user may see; anything else is NotFound (never 'forbidden')."""
    qs = containers_visible_to(user)
    if site_slug:
        qs = qs.filter(site__slug=site_slug)
    try:
        if pk is not None:
            return qs.get(pk=pk)
        return qs.get(hostname=hostname)
    except (Container.DoesNotExist, Container.MultipleObjectsReturned, ValueError):
        raise NotFound(f"no container {hostname or pk}", code="not_found") from None


def jobs_visible_to(user: User | AnonymousUser) -> QuerySet[Job]:
    """Jobs of the containers the user may see (their collaborators see them too)."""
    qs = Job.objects.select_related("container", "actor")
    if getattr(user, "is_staff", False):
        return qs
    if not user.is_authenticated:
        return qs.none()
    return qs.filter(container__in=Container.objects.filter(visible_container_q(user)))


def job_get(user: User | AnonymousUser, job_id: str) -> Job:
    try:
        return jobs_visible_to(user).get(pk=job_id)
    except (Job.DoesNotExist, ValidationError, ValueError):
        raise NotFound(f"no job {job_id}") from None


def job_log(job: Job, *, after: int = 0) -> QuerySet[JobLogEntry]:
    return job.log_entries.filter(id__gt=after).order_by("id")
