"""Creates that failed: they stay on the owner's dashboard, with their error, until the
owner tries again or dismisses them (services for both; reads in selectors)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from auth.audit import audit_record
from networking.models import RouteAccess

from .models import Container, Job, JobKind
from .services import container_create

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def failed_create_dismiss(*, container: Container, actor: User) -> None:
    """The owner has seen it: it leaves the dashboard (the row stays, as history)."""
    Container.objects.filter(pk=container.pk, dismissed_at__isnull=True).update(
        dismissed_at=timezone.now()
    )


def failed_create_retry(*, container: Container, actor: User) -> Job:
    """A new container with the failed one's name, template and sizes, checked and
    allocated like any create; the failed one is dismissed in the same transaction."""
    failed = container.jobs.filter(kind=JobKind.CREATE).order_by("-created_at").first()
    params = failed.params if failed and isinstance(failed.params, dict) else {}
    with transaction.atomic():
        job = container_create(
            owner=container.owner,
            hostname=container.hostname,
            template=container.template,
            site=container.site,
            cores=container.cores,
            memory_mib=container.memory_mib,
            swap_mib=container.swap_mib,
            disk_gib=container.disk_gib,
            ssh_public_keys=container.ssh_public_keys,
            description=container.description,
            route_access=params.get("route_access", RouteAccess.USERS),
            actor=actor,
        )
        failed_create_dismiss(container=container, actor=actor)
        audit_record(
            actor=actor,
            action="container.create_retry",
            obj=job.container,
            summary=f"tried {container.hostname} again after its create failed (was #{container.pk})",
        )
    return job
