"""Reads: permission scoping and the joins list pages need."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from django.core.exceptions import ValidationError
from django.db.models import BigIntegerField, F, FloatField, Prefetch, QuerySet, Value
from django.db.models.functions import Coalesce

from auth.selectors import visible_container_q
from networking.models import Node, Route
from portal.errors import NotFound

from . import quotas
from .metrics.models import OPEN_ALERT, ContainerAlert
from .models import (
    ACTIVE_JOB_STATUSES,
    LIVE,
    Container,
    ContainerStatus,
    Job,
    JobKind,
    JobLogEntry,
    JobStatus,
    Template,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

    from auth.quotas import QuotaStatus


_Row = TypeVar("_Row", Job, ContainerAlert)  # the rows asked for by container


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
        raise NotFound(f"no container {hostname or pk}") from None


def deleted_container_get(user: User | AnonymousUser, *, pk: int) -> Container:
    """A deleted container the user could see when it lived (its page says it is gone)."""
    found = (
        containers_visible_to(user, include_deleted=True)
        .filter(pk=pk, status=ContainerStatus.DELETED)
        .select_related("template", "node", "site")
        .first()
    )
    if found is None:
        raise NotFound(f"no container {pk}")
    return found


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


def open_alerts_prefetch() -> Prefetch:
    """Each container's open alerts as `open_alerts` (one query for a whole page)."""
    return Prefetch(
        "alerts",
        queryset=ContainerAlert.objects.filter(OPEN_ALERT).order_by("kind"),
        to_attr="open_alerts",
    )


# The node's, site's, template's and owner's rows are shared by many containers: a page
# reads each once, by their distinct ids (`containers_page`), instead of joining and
# building them for every row, which cost more than the rest of the page's read; nor is
# a node's API token decrypted. (Django's prefetch read them so too, but set each row's
# four relations through their descriptors one by one: 5 ms more a page of 1,000.)
SHARED_ROWS = ("site", "node", "template", "owner")
LIST_UNREAD = (
    "ssh_public_keys",
    "description",
    "deleted_at",
    "dismissed_at",
    "expiry_warned_at",
    *(f"sample__{counter}" for counter in ("netin", "netout", "diskread", "diskwrite")),
)


def api_containers(user: User | AnonymousUser, *, many: bool) -> QuerySet[Container]:
    """The API's containers: visible to the user, each with its latest sample (and its
    `cpu` and `mem` to order by, -1 without one). One (`many=False`) comes with its
    active job and open alerts; a list's page gets them, and the rows many containers
    share, from `containers_page` once it is read."""
    qs = (
        containers_visible_to(user)
        .select_related("sample")
        .annotate(
            cpu=Coalesce(F("sample__cpu"), Value(-1.0), output_field=FloatField()),
            mem=Coalesce(F("sample__mem"), Value(-1), output_field=BigIntegerField()),
        )
    )
    if not many:
        active = Prefetch(
            "jobs",
            queryset=Job.objects.filter(status__in=ACTIVE_JOB_STATUSES),
            to_attr="active_jobs",
        )
        return qs.prefetch_related(active, open_alerts_prefetch())
    # A list's page reads only what its objects show: not the keys, the description, the
    # sample's counters, nor the dates only the sweeps use (a page of 1,000 converted them
    # all; docs/performance.md).
    return qs.select_related(None).select_related("sample").defer(*LIST_UNREAD)


def containers_page(containers: list[Container]) -> list[Container]:
    """A list's page of `api_containers(many=True)`: each container with its site, node,
    template and owner (a query apiece for the page) and its activity
    (`containers_with_activity`)."""
    for name in SHARED_ROWS:
        attname = f"{name}_id"
        ids = {getattr(c, attname) for c in containers}
        model = Container._meta.get_field(name).related_model
        queryset = model._default_manager.all()  # type: ignore[union-attr]
        if model is Node:
            queryset = queryset.defer("token_secret")
        found = queryset.in_bulk(ids) if ids else {}
        for c in containers:
            # The relation's cache, as select_related fills it (no descriptor, no query).
            c._state.fields_cache[name] = found[getattr(c, attname)]
    for c in containers:
        # select_related caches the sample's way back to its container too: a cycle per
        # row, which only the cyclic collector frees (a scan of the whole page, 5 ms).
        sample = c._state.fields_cache.get("sample")
        if sample is not None:
            sample._state.fields_cache.pop("container", None)
    return containers_with_activity(containers)


def containers_with_activity(containers: list[Container]) -> list[Container]:
    """The containers, each with its active jobs (`active_jobs`) and open alerts
    (`open_alerts`, by kind), in one query apiece, whatever their number. (Django's
    prefetch did the same, but built each of the page's containers into its IN list one
    by one: 20 µs a container, a fifth of a page of 1,000.)"""
    ids = [c.pk for c in containers]
    jobs: dict[int, list[Job]] = {}
    for job in _of_containers(Job.objects.filter(status__in=ACTIVE_JOB_STATUSES), ids):
        jobs.setdefault(job.container_id, []).append(job)  # type: ignore[arg-type]
    alerts: dict[int, list[ContainerAlert]] = {}
    for alert in _of_containers(ContainerAlert.objects.filter(OPEN_ALERT), ids).order_by("kind"):
        alerts.setdefault(alert.container_id, []).append(alert)
    for c in containers:  # rows of containers not in `containers` are never looked up
        c.active_jobs = jobs.get(c.pk, [])  # type: ignore[attr-defined]
        c.open_alerts = alerts.get(c.pk, [])  # type: ignore[attr-defined]
    return containers


# The rows of a page's containers are asked for by the ids' bounds when the ids lie this
# close together (a page of one owner's containers, in the list's order, does), so that at
# most this many times the page's containers are read; else by the ids themselves. 1,000
# ids cost 7 ms to build, send and plan on PostgreSQL, two bounds 1 ms, for a database's
# work of 0.06 ms either way (docs/performance.md).
ID_RANGE_SLACK = 4


def _of_containers(rows: QuerySet[_Row], ids: list[int]) -> QuerySet[_Row]:
    if not ids:
        return rows.none()
    low, high = min(ids), max(ids)
    if high - low < ID_RANGE_SLACK * len(ids):
        return rows.filter(container_id__gte=low, container_id__lte=high)
    return rows.filter(container_id__in=ids)


def alerts_visible_to(user: User | AnonymousUser) -> QuerySet[ContainerAlert]:
    """Raised alerts, open or cleared, of the live containers the user may see (staff: all);
    a pending one (its condition not yet held long enough) was never said, so never shown."""
    return ContainerAlert.objects.filter(
        raised_at__isnull=False, container__in=containers_visible_to(user).values("pk")
    ).select_related("container__site", "container__node")


def job_log(job: Job, *, after: int = 0) -> QuerySet[JobLogEntry]:
    return job.log_entries.filter(id__gt=after).order_by("id")


def _failed_creates(user: User | AnonymousUser) -> QuerySet[Container]:
    if not user.is_authenticated:
        return Container.objects.none()
    return Container.objects.filter(
        owner=user,
        status=ContainerStatus.DELETED,
        dismissed_at__isnull=True,
        jobs__kind=JobKind.CREATE,
        jobs__status=JobStatus.FAILED,
    ).distinct()


def failed_creates_for(user: User | AnonymousUser) -> list[Container]:
    """The user's own containers whose create failed and was cleaned up, not yet dismissed,
    newest first (20 at most), each with its failed create job as `failed_job`."""
    failed = Job.objects.filter(kind=JobKind.CREATE, status=JobStatus.FAILED)
    rows: list[Container] = list(
        _failed_creates(user)
        .select_related("template")
        .prefetch_related(Prefetch("jobs", queryset=failed, to_attr="failed_jobs"))
        .order_by("-created_at")[:20]
    )
    for c in rows:
        c.failed_job = c.failed_jobs[0] if c.failed_jobs else None  # type: ignore[attr-defined]
    return rows


def failed_create_get(user: User | AnonymousUser, *, pk: int) -> Container:
    """One of the user's undismissed failed creates; anything else is NotFound."""
    found = _failed_creates(user).select_related("template", "site", "owner").filter(pk=pk).first()
    if found is None:
        raise NotFound(f"no failed container {pk}")
    return found


def user_quota(user: User) -> QuotaStatus:
    """Usage and limits (with where each limit comes from), before anything is submitted."""
    return quotas.quota_status(user)


# -- the GUI's pages -------------------------------------------------------------------------------
# The dashboard's sort keys (a leading "-" for descending): the latest sample's figures.
DASHBOARD_SORTS = {"cpu": "sample__cpu", "mem": "sample__mem"}


def dashboard_containers(
    user: User,
    *,
    q: str = "",
    status: str = "",
    node: str = "",
    owner: str = "",
    sort: str = "",
) -> QuerySet[Container]:
    """The dashboard's rows: what the user may see (deleted ones only when `status` asks
    for them), filtered, by site and hostname or by `sort` (cpu, mem, -cpu, -mem), with
    each one's latest sample in the same query and its active job and ports in two more,
    whatever the page size. Containers without a sample come last either way. `owner`
    filters for staff only."""
    active = Prefetch(
        "jobs", queryset=Job.objects.filter(status__in=ACTIVE_JOB_STATUSES), to_attr="active_jobs"
    )
    qs = (
        containers_visible_to(user, include_deleted=status == ContainerStatus.DELETED)
        .select_related("sample")
        .prefetch_related(active, "port_mappings")
        .order_by("site_id", "hostname")
    )
    key = DASHBOARD_SORTS.get(sort.removeprefix("-"))
    if key is not None:
        by = F(key).desc(nulls_last=True) if sort.startswith("-") else F(key).asc(nulls_last=True)
        qs = qs.order_by(by, "site_id", "hostname")
    if q:
        qs = qs.filter(hostname__icontains=q)
    if status in ContainerStatus.values:
        qs = qs.filter(status=status)
    if node:
        qs = qs.filter(node__name=node)
    if owner and user.is_staff:
        qs = qs.filter(owner__username=owner)
    return qs


def templates_enabled() -> list[Template]:
    return list(Template.objects.filter(enabled=True).order_by("name"))


def template_by_id(pk: int) -> Template | None:
    return Template.objects.filter(pk=pk).select_related("site").first()


def recent_jobs(container: Container, *, limit: int = 10) -> list[Job]:
    return list(container.jobs.select_related("actor").order_by("-created_at")[:limit])


def container_route(container: Container, route_id: int) -> Route | None:
    """One of the container's routes (None if the id is another container's)."""
    return container.routes.select_related("site", "container").filter(pk=route_id).first()


def route_serving(label: str, domain: str) -> Route | None:
    """The enabled route of a live container that answers for <label>.<domain>."""
    return (
        Route.objects.select_related("container", "container__owner")
        .filter(subdomain=label, site__domain=domain, enabled=True)
        .exclude(container__status=ContainerStatus.DELETED)
        .first()
    )
