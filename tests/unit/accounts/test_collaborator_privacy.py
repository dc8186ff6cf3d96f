"""Adding a collaborator tells an owner no more about who exists than the directory shows.

An unknown name, a disabled account and an account the directory does not have (a local
break-glass operator) get one answer: the same status, code and message. Checks that do
not depend on the name (the container's state, a job in progress) come first, so they
cannot be used to tell names apart either. A real user is still added.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from auth.models import AuditEntry, Collaborator
from containers import collaborators, services
from containers.models import Container, ContainerStatus, Job
from portal.errors import Conflict, NotFound, PortalError
from tests.factories import UserFactory, make_site

pytestmark = pytest.mark.django_db


def settle(c: Container) -> Container:
    Job.objects.filter(container=c).update(status="succeeded")
    Container.objects.filter(pk=c.pk).update(status=ContainerStatus.RUNNING)
    c.refresh_from_db()
    return c


@pytest.fixture
def owned() -> tuple[User, Container]:
    site = make_site(None)
    owner = UserFactory(username="owner")
    c = services.container_create(owner=owner, hostname="web", template=site.templates.get())
    return owner, settle(c.container)


def answer(exc: PortalError, name: str) -> tuple[Any, ...]:
    """What a caller sees of a refusal, with the name it typed taken out."""
    extra = tuple(sorted((k, str(v)) for k, v in exc.extra.items()))
    return (type(exc), exc.http_status, exc.code, exc.message.replace(name, "NAME"), extra)


def refusal(container: Container, actor: User, name: str) -> tuple[Any, ...]:
    with pytest.raises(PortalError) as caught:
        collaborators.collaborator_add(container=container, username=name, actor=actor)
    return answer(caught.value, name)


def test_unknown_and_disabled_users_get_one_answer(owned) -> None:
    owner, c = owned
    UserFactory(username="gone", is_active=False)
    unknown = refusal(c, owner, "nobody")
    assert unknown[0] is NotFound and unknown[2] == "user_not_found"
    assert refusal(c, owner, "gone") == unknown
    UserFactory(username="real")
    collaborators.collaborator_add(container=c, username="real", actor=owner)
    assert Collaborator.objects.filter(container=c, user__username="real").exists()


def test_the_names_do_not_matter_while_a_job_is_in_progress(owned) -> None:
    owner, c = owned
    UserFactory(username="real")
    services.container_stop(container=c, actor=owner)  # a job is now active
    answers = {refusal(c, owner, name) for name in ("real", "nobody")}
    assert len(answers) == 1 and next(iter(answers))[0] is Conflict


def test_the_names_do_not_matter_while_the_container_cannot_change(owned) -> None:
    owner, c = owned
    UserFactory(username="real")
    Container.objects.filter(pk=c.pk).update(status=ContainerStatus.PROVISIONING)
    c.refresh_from_db()
    answers = {refusal(c, owner, name) for name in ("real", "nobody")}
    assert len(answers) == 1


def test_refusals_are_audited(owned) -> None:
    owner, c = owned
    refusal(c, owner, "nobody")
    entry = AuditEntry.objects.get(action="collaborator.add_refused")
    assert entry.actor == owner and "nobody" in entry.summary


def _post(client: Client, c: Container, name: str) -> Any:
    return client.post(
        f"/api/v1/containers/{c.pk}/collaborators/",
        {"username": name},
        content_type="application/json",
    )


def test_the_api_and_the_gui_answer_alike_for_unknown_and_disabled_users(owned) -> None:
    from tests.api_contract import check

    owner, c = owned
    UserFactory(username="gone", is_active=False)
    client = Client()
    client.force_login(owner)
    bodies = []
    for name in ("nobody", "gone"):
        response = check(_post(client, c, name))
        body = response.json()
        bodies.append((response.status_code, body["code"], body["message"].replace(name, "N")))
    assert bodies[0] == bodies[1] and bodies[0][0] == 404
    pages = []
    for name in ("nobody", "gone"):
        # Back to the container page, where the form shows the refusal.
        response = client.post(f"/containers/{c.pk}/collaborators/add/", {"username": name})
        html = client.get(response["Location"]).content.decode()
        start = html.index('id="collab-error"')
        pages.append((response.status_code, html[start : html.index("</", start)]))
    assert pages[0][0] == pages[1][0] == 302
    assert pages[0][1].replace("nobody", "N") == pages[1][1].replace("gone", "N")
