"""Job kinds are classes in a registry: the runner and the services know none in particular.

The example below is what adding a kind takes: one class, registered. It runs through
the real runner against the simulator over HTTPS."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest

from containers import services
from containers.jobs import JobContext, JobKindBase, kind, kinds, register, run
from containers.models import ContainerStatus, Job, JobStatus
from portal.errors import InvalidState, PortalError
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


class Census(JobKindBase):
    """Counts the guests on the container's node; fails on demand, to show the undo."""

    name = "census"
    verb = "Counting around"
    steps = (("count", "Count the guests on the node"),)
    start_from = (ContainerStatus.RUNNING, ContainerStatus.STOPPED, ContainerStatus.PENDING)
    retry_from = start_from
    permission = "view"

    def run(self, ctx: JobContext) -> dict[str, Any]:
        found: dict[str, Any] = {}

        def count(st: dict[str, Any]) -> None:
            if ctx.job.params.get("fail"):
                raise PortalError("asked to fail", code="census_failed")
            found["guests"] = len(ctx.client.lxc_list(ctx.node))
            ctx.log(f"{found['guests']} CTs on {ctx.node}")

        ctx.run_step("count", count)
        return found

    def undo(self, ctx: JobContext) -> str:
        return "nothing to put right"


def quiet_container(cluster: Any, owner: Any, hostname: str) -> Any:
    """A container whose create is recorded as done (no worker: this test runs the runner)."""
    with mock.patch("containers.tasks.enqueue_job"):
        create = services.container_create(
            owner=owner, hostname=hostname, template=cluster.templates.get()
        )
    Job.objects.filter(pk=create.pk).update(status=JobStatus.SUCCEEDED)
    return create.container


@pytest.fixture
def census() -> Iterator[type[Census]]:
    register(Census)
    yield Census
    kind._REGISTRY.pop(Census.name)


def test_a_new_kind_is_one_registered_class(cluster, sim, census) -> None:
    assert set(kinds()) >= {"create", "delete", "start", "stop", "restart", "resize", "access"}
    owner = UserFactory()
    c = quiet_container(cluster, owner, "census")
    with mock.patch("containers.tasks.enqueue_job"):  # run here, by this test's runner
        job = services.job_create(kind="census", container=c, actor=owner)
    assert [s["name"] for s in job.steps] == ["count"]
    run(str(job.pk), worker="test")
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert isinstance(job.result["guests"], int)
    assert job.get_kind_display() == "Census"


def test_a_failing_kind_says_its_verb_and_runs_its_undo(cluster, sim, census) -> None:
    owner = UserFactory()
    c = quiet_container(cluster, owner, "census2")
    with mock.patch("containers.tasks.enqueue_job"):
        job = services.job_create(kind="census", container=c, actor=owner, params={"fail": True})
    run(str(job.pk), worker="test")
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error == (
        "Counting around census2 failed at step 'Count the guests on the node': asked to fail. "
        "Nothing to put right"
    )


def test_an_unknown_kind_is_refused(cluster) -> None:
    owner = UserFactory()
    c = quiet_container(cluster, owner, "nokind")
    with pytest.raises(InvalidState, match="no job kind 'nosuch'"):
        services.job_create(kind="nosuch", container=c, actor=owner)
    # A row of a kind no longer registered (an old job) fails when run, and says why.
    orphan = Job.objects.create(kind="retired", container=c, steps=[])
    run(str(orphan.pk), worker="test")
    orphan.refresh_from_db()
    assert (orphan.status, orphan.error_code) == ("failed", "invalid_job_kind")
