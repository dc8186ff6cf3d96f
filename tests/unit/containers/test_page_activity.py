"""containers.selectors.containers_with_activity: a page's active jobs and open alerts, by
the page's id bounds when its ids lie close together, else by its ids; either way a
container gets its own rows and never another's."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from containers import selectors
from containers.metrics.models import AlertKind, ContainerAlert
from containers.models import Container, Job, JobKind, JobStatus
from tests.factories import UserFactory, make_containers, make_site

pytestmark = pytest.mark.django_db


def busy(c: Container, *, status: str = JobStatus.RUNNING) -> Job:
    return Job.objects.create(container=c, kind=JobKind.START, status=status)


def alert(c: Container) -> ContainerAlert:
    now = timezone.now()
    return ContainerAlert.objects.create(
        container=c, kind=AlertKind.CPU, since=now, raised_at=now, value=1.0, message="x"
    )


def activity_sql(page: list[Container]) -> list[str]:
    with CaptureQueriesContext(connection) as ctx:
        selectors.containers_with_activity(page)
    return [q["sql"] for q in ctx.captured_queries]


def by_bounds(sql: str) -> bool:
    return '"container_id" >= ' in sql and '"container_id" IN (' not in sql


def test_interleaved_owners_each_see_only_their_own_activity() -> None:
    site = make_site(None)
    alice, bob = UserFactory(), UserFactory()
    made = make_containers(site, 8, first_vmid=100)
    # Alice owns every other container, so Bob's ids lie between hers.
    for n, c in enumerate(made):
        Container.objects.filter(pk=c.pk).update(owner=alice if n % 2 == 0 else bob)
    theirs = [c for n, c in enumerate(made) if n % 2]
    job, finished = busy(theirs[0]), busy(theirs[1], status=JobStatus.SUCCEEDED)
    alert(theirs[2])
    mine = list(Container.objects.filter(owner=alice).order_by("pk"))
    own_job, own_alert = busy(mine[1]), alert(mine[2])

    sql = activity_sql(mine)
    assert len(sql) == 2 and all(by_bounds(q) for q in sql)
    page = selectors.containers_with_activity(mine)
    assert [[j.pk for j in c.active_jobs] for c in page] == [[], [own_job.pk], [], []]
    assert [[a.pk for a in c.open_alerts] for c in page] == [[], [], [own_alert.pk], []]
    bobs = selectors.containers_with_activity(
        list(Container.objects.filter(owner=bob).order_by("pk"))
    )
    assert [[j.pk for j in c.active_jobs] for c in bobs][:2] == [[job.pk], []]
    assert finished.pk not in {j.pk for c in bobs for j in c.active_jobs}


def test_ids_far_apart_are_asked_for_one_by_one() -> None:
    site = make_site(None)
    made = make_containers(site, 10, first_vmid=100)
    page = [made[0], made[-1]]  # 2 containers, 10 ids apart: more than 4 times the page
    busy(made[-1])
    sql = activity_sql(page)
    assert len(sql) == 2 and not any(by_bounds(q) for q in sql)
    assert all('"container_id" IN (' in q for q in sql)
    done = selectors.containers_with_activity(page)
    assert [len(c.active_jobs) for c in done] == [0, 1]
    assert activity_sql([]) == []  # an empty page asks nothing
