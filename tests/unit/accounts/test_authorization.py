"""Who may do what to a container: others' containers are invisible (404) everywhere; a
collaborator sees, starts, stops and opens, and no more; staff may do everything."""

from __future__ import annotations

import pytest
from django.test import Client

from auth.models import AuditEntry
from auth.selectors import container_role
from containers import collaborators, resource_requests, selectors, services
from containers.models import Container, Job
from portal.errors import NotFound, PermissionDenied
from tests.factories import UserFactory, make_site

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    site = make_site()
    alice, carol, eve = (UserFactory(username=n) for n in ("alice", "carol", "eve"))
    staff = UserFactory(username="ops", is_staff=True)
    c = services.container_create(
        owner=alice, hostname="web", template=site.templates.get()
    ).container
    settle(c, "error")  # "error" allows both start and stop: only permissions decide
    collaborators.collaborator_add(container=c, username="carol", actor=alice)
    settle(c, "error")
    return {"site": site, "alice": alice, "carol": carol, "eve": eve, "staff": staff, "c": c}


def settle(c: Container, status: str) -> Container:
    Job.objects.filter(container=c).update(status="succeeded")
    Container.objects.filter(pk=c.pk).update(status=status)
    c.refresh_from_db()
    return c


def test_roles(world) -> None:
    c = world["c"]
    assert container_role(world["alice"], c) == "owner"
    assert container_role(world["carol"], c) == "collaborator"
    assert container_role(world["staff"], c) == "staff"
    assert container_role(world["eve"], c) is None


def test_another_users_container_is_invisible_through_every_read(world) -> None:
    c, eve = world["c"], world["eve"]
    job = c.jobs.first()
    assert c not in selectors.containers_visible_to(eve)
    with pytest.raises(NotFound):
        selectors.container_get(eve, pk=c.pk)
    with pytest.raises(NotFound):
        selectors.container_get(eve, hostname="web")
    assert not selectors.jobs_visible_to(eve).exists()
    with pytest.raises(NotFound):
        selectors.job_get(eve, str(job.pk))


SERVICE_CALLS = {
    "start": lambda c, u: services.container_start(container=c, actor=u),
    "stop": lambda c, u: services.container_stop(container=c, actor=u),
    "restart": lambda c, u: services.container_restart(container=c, actor=u),
    "resize": lambda c, u: services.container_resize(container=c, actor=u, cores=2),
    "delete": lambda c, u: services.container_delete(container=c, actor=u),
    "add collaborator": lambda c, u: collaborators.collaborator_add(
        container=c, username="eve", actor=u
    ),
    "remove collaborator": lambda c, u: collaborators.collaborator_remove(
        container=c, username="carol", actor=u
    ),
    "access sync": lambda c, u: collaborators.container_access_sync(container=c, actor=u),
    "resize request": lambda c, u: resource_requests.resource_request_create(
        user=u, kind="resize", container=c, cores=4, reason="it is not even mine, but"
    ),
}


@pytest.mark.parametrize("action", list(SERVICE_CALLS))
def test_another_users_container_is_untouchable_through_every_service(world, action) -> None:
    c, eve = world["c"], world["eve"]
    if action == "restart":
        settle(c, "running")
    with pytest.raises(NotFound) as err:
        SERVICE_CALLS[action](c, eve)
    assert err.value.http_status == 404 and "web" in str(err.value)
    assert not c.jobs.filter(actor=eve).exists()


def test_nobody_creates_for_someone_else_but_staff(world) -> None:
    template = world["site"].templates.get()
    with pytest.raises(PermissionDenied):
        services.container_create(
            owner=world["alice"], hostname="sneaky", template=template, actor=world["eve"]
        )
    job = services.container_create(
        owner=world["alice"], hostname="gift", template=template, actor=world["staff"]
    )
    assert job.container.owner == world["alice"]


@pytest.mark.parametrize("action", ["start", "stop", "restart"])
def test_a_collaborator_may_start_stop_and_restart(world, action) -> None:
    c, carol = world["c"], world["carol"]
    if action == "restart":
        settle(c, "running")
    job = SERVICE_CALLS[action](c, carol)
    assert job.actor == carol and job.kind == action
    assert AuditEntry.objects.filter(action=f"container.{action}", actor=carol).count() == 1


def test_a_collaborator_sees_the_container_and_its_jobs(world) -> None:
    c, carol = world["c"], world["carol"]
    assert list(selectors.containers_visible_to(carol)) == [c]
    assert selectors.container_get(carol, hostname="web") == c
    assert set(selectors.jobs_visible_to(carol)) == set(c.jobs.all())


@pytest.mark.parametrize(
    "action", ["resize", "delete", "add collaborator", "remove collaborator", "access sync"]
)
def test_a_collaborator_may_not_resize_delete_or_change_access(world, action) -> None:
    c, carol = world["c"], world["carol"]
    with pytest.raises(PermissionDenied) as err:
        SERVICE_CALLS[action](c, carol)
    assert err.value.http_status == 403 and "ask its owner" in str(err.value)
    c.refresh_from_db()
    assert c.status == "error" and not c.jobs.filter(actor=carol).exists()


@pytest.mark.parametrize("action", ["resize", "add collaborator", "remove collaborator", "delete"])
def test_staff_may_do_everything(world, action) -> None:
    if action == "resize":
        settle(world["c"], "running")
    job = SERVICE_CALLS[action](world["c"], world["staff"])
    assert job.actor == world["staff"]


def test_removing_a_collaborator_hides_the_container_again(world) -> None:
    c = world["c"]
    collaborators.collaborator_remove(container=c, username="carol", actor=world["alice"])
    assert not selectors.containers_visible_to(world["carol"]).exists()
    with pytest.raises(NotFound):
        services.container_start(container=c, actor=world["carol"])


def test_many_collaborators_do_not_duplicate_rows(world) -> None:
    c, alice = world["c"], world["alice"]
    for name in ("x1", "x2", "x3"):
        UserFactory(username=name)
        collaborators.collaborator_add(container=c, username=name, actor=alice)
        settle(c, "error")
    assert selectors.containers_visible_to(alice).count() == 1
    assert list(selectors.containers_visible_to(alice)) == [c]


def test_collaborator_rules(world) -> None:
    from portal.errors import Conflict, ValidationFailed

    c, alice = world["c"], world["alice"]
    with pytest.raises(ValidationFailed, match="owns"):
        collaborators.collaborator_add(container=c, username="alice", actor=alice)
    with pytest.raises(Conflict, match="already a collaborator"):
        collaborators.collaborator_add(container=c, username="CAROL", actor=alice)
    with pytest.raises(NotFound, match="no user named"):
        collaborators.collaborator_add(container=c, username="nobody", actor=alice)
    services.container_start(container=c, actor=alice)  # a job is now active
    with pytest.raises(Conflict, match="in progress"):
        collaborators.collaborator_add(container=c, username="eve", actor=alice)
    assert not c.collaborators.filter(user__username="eve").exists()  # rolled back with it


def test_through_the_api_others_get_404_and_collaborators_403_for_delete(world) -> None:
    c = world["c"]
    eve, carol = Client(), Client()
    eve.force_login(world["eve"])
    carol.force_login(world["carol"])
    for client, method, path, expected in (
        (eve, "get", f"/api/v1/containers/{c.pk}/", 404),
        (eve, "post", f"/api/v1/containers/{c.pk}/stop/", 404),
        (eve, "delete", f"/api/v1/containers/{c.pk}/", 404),
        (carol, "get", f"/api/v1/containers/{c.pk}/", 200),
        (carol, "delete", f"/api/v1/containers/{c.pk}/", 403),
        (carol, "post", f"/api/v1/containers/{c.pk}/stop/", 202),
    ):
        response = getattr(client, method)(path, content_type="application/json")
        assert response.status_code == expected, (method, path, response.content)
