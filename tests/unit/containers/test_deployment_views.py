"""The LaunchPad pages through Django's test client: who sees what (owner, other, staff),
env values never on a page, the list's queries flat, Extend and Destroy through their
services (tests/functional/browser/test_deployments_gui.py drives them in Chromium)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from containers import services
from containers.models import Container, Deployment, DeploymentState, Job, JobKind, JobStatus
from tests.factories import UserFactory, make_site

pytestmark = pytest.mark.django_db

SHA = "3f2a9b1c0d4e5f60718293a4b5c6d7e8f9012345"
OLD = "9b1c3f2a0d4e5f60718293a4b5c6d7e8f9012345"
SECRET = "s3cret-value-never-shown"


@pytest.fixture
def site(no_jobs: None) -> Any:
    return make_site(None)


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def deployment(site: Any, owner: Any, repository: str = "alice/shop", ref: str = "main") -> Any:
    """A deployment row as if its deploy had run: a container named by the rule, live."""
    name = f"{repository.replace('/', '-')}-{ref}".lower()
    job = services.container_create(owner=owner, hostname=name, template=site.templates.get())
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED, progress=100)
    return Deployment.objects.create(
        owner=owner,
        repository=repository,
        ref=ref,
        name=name,
        container=job.container,
        commit=SHA,
        serving_commit=OLD,
        state=DeploymentState.FAILED,
        state_message=f"the deploy of {SHA[:12]} failed; {OLD[:12]} still serves",
        app={
            "start": "gunicorn app:app",
            "install": "pip install -r requirements.txt",
            "port": 8080,
        },
        env=json.dumps({"SECRET_KEY": SECRET, "DATABASE_URL": SECRET + "-db"}),
        expires_at=timezone.now() + timedelta(days=2),
    )


def test_the_owner_sees_the_list_and_the_page(site: Any) -> None:
    alice = UserFactory(username="alice")
    deployment(site, alice)
    client = client_for(alice)

    page = client.get("/deployments/").content.decode()
    assert 'href="/deployments/alice-shop-main/"' in page
    assert 'href="https://alice-shop-main.apps.example.test/"' in page
    assert SHA[:7] in page and OLD[:7] in page
    assert "Failed" in page and "still serves" in page
    assert 'href="/deployments/"' in client.get("/").content.decode()  # the nav link

    page = client.get("/deployments/alice-shop-main/").content.decode()
    assert "https://alice-shop-main.apps.example.test/" in page
    assert SHA in page and OLD in page
    assert "gunicorn app:app" in page and "8080" in page
    assert 'action="/deployments/alice-shop-main/extend/"' in page
    assert 'action="/deployments/alice-shop-main/destroy/"' in page
    assert 'data-runtime-log="/api/v1/deployments/alice-shop-main/logs/"' in page
    c = Deployment.objects.get().container
    assert f'href="/containers/{c.pk}/"' in page
    # The create job is the history's first row, and its live log is on the page.
    job = c.jobs.get()
    assert f'href="?job={job.pk}#job-h"' in page
    assert f'data-job-events="/api/v1/jobs/{job.pk}/events/"' in page


def test_another_user_gets_404_everywhere(site: Any) -> None:
    deployment(site, UserFactory(username="alice"))
    bob = client_for(UserFactory(username="bob"))
    assert "alice-shop-main" not in bob.get("/deployments/").content.decode()
    assert bob.get("/deployments/alice-shop-main/").status_code == 404
    assert bob.post("/deployments/alice-shop-main/extend/", {"days": 3}).status_code == 404
    confirm = {"confirm": "alice-shop-main"}
    assert bob.post("/deployments/alice-shop-main/destroy/", confirm).status_code == 404
    assert Deployment.objects.get().state == DeploymentState.FAILED
    assert Client().get("/deployments/").status_code == 302  # to the login page


def test_staff_see_every_deployment(site: Any) -> None:
    deployment(site, UserFactory(username="alice"))
    deployment(site, UserFactory(username="bob"), repository="bob/blog")
    staff = client_for(UserFactory(username="stella", is_staff=True))
    page = staff.get("/deployments/").content.decode()
    assert "All deployments" in page
    assert "alice-shop-main" in page and "bob-blog-main" in page
    assert staff.get("/deployments/bob-blog-main/").status_code == 200


def test_env_values_are_never_on_a_page(site: Any) -> None:
    alice = UserFactory(username="alice")
    deployment(site, alice)
    client = client_for(alice)
    for url in ("/deployments/", "/deployments/alice-shop-main/"):
        assert SECRET not in client.get(url).content.decode()
    page = client.get("/deployments/alice-shop-main/").content.decode()
    assert "<code>SECRET_KEY</code>" in page and "<code>DATABASE_URL</code>" in page


def test_the_list_costs_the_same_queries_for_one_row_or_many(site: Any) -> None:
    stella = UserFactory(username="stella", is_staff=True)
    deployment(site, UserFactory(username="u0"), repository="u0/app")
    staff = client_for(stella)
    staff.get("/deployments/")  # warm: the session, the content types
    with CaptureQueriesContext(connection) as one:
        staff.get("/deployments/")
    for i in range(1, 6):
        deployment(site, UserFactory(username=f"u{i}"), repository=f"u{i}/app")
    with CaptureQueriesContext(connection) as six:
        page = staff.get("/deployments/").content.decode()
    assert page.count("data-deployment=") == 6
    assert len(six.captured_queries) == len(one.captured_queries)


def test_removed_ones_are_listed_only_when_asked_for(site: Any) -> None:
    alice = UserFactory(username="alice")
    d = deployment(site, alice)
    Deployment.objects.filter(pk=d.pk).update(state=DeploymentState.REMOVED)
    client = client_for(alice)
    assert "data-deployment=" not in client.get("/deployments/").content.decode()
    assert "alice-shop-main" in client.get("/deployments/?state=removed").content.decode()
    page = client.get("/deployments/alice-shop-main/").content.decode()  # its history
    assert "Removed" in page and "deployment-extend" not in page and "Destroy" not in page


def test_a_job_of_another_container_is_not_shown(site: Any) -> None:
    alice = UserFactory(username="alice")
    deployment(site, alice)
    other = services.container_create(owner=alice, hostname="other", template=site.templates.get())
    client = client_for(alice)
    assert client.get(f"/deployments/alice-shop-main/?job={other.pk}").status_code == 404
    assert client.get("/deployments/alice-shop-main/?job=nope").status_code == 404


def test_a_bad_extend_comes_back_at_its_field(site: Any) -> None:
    alice = UserFactory(username="alice")
    deployment(site, alice)
    client = client_for(alice)
    response = client.post("/deployments/alice-shop-main/extend/", {"days": "0"})
    assert response.status_code == 302
    assert response["Location"] == "/deployments/alice-shop-main/#expiry-h"
    page = client.get(response["Location"]).content.decode()
    assert 'id="days-error"' in page and 'value="0"' in page


def test_a_wrong_confirmation_destroys_nothing(site: Any) -> None:
    alice = UserFactory(username="alice")
    deployment(site, alice)
    client = client_for(alice)
    response = client.post("/deployments/alice-shop-main/destroy/", {"confirm": "alice"})
    assert response["Location"] == "/deployments/alice-shop-main/#destroy-h"
    page = client.get(response["Location"]).content.decode()
    assert 'id="confirm-error"' in page
    assert Deployment.objects.get().state == DeploymentState.FAILED


# -- through the services of containers.deployments (deployment_extend, deployment_destroy) --
def test_extend_moves_the_expiry(site: Any) -> None:
    alice = UserFactory(username="alice")
    d = deployment(site, alice)
    before = timezone.now()
    response = client_for(alice).post("/deployments/alice-shop-main/extend/", {"days": "10"})
    assert response["Location"] == "/deployments/alice-shop-main/#expiry-h"
    d.refresh_from_db()
    assert d.expires_at is not None
    assert before + timedelta(days=10) <= d.expires_at <= timezone.now() + timedelta(days=10)


def test_staff_may_extend_anyones(site: Any) -> None:
    d = deployment(site, UserFactory(username="alice"))
    staff = client_for(UserFactory(username="stella", is_staff=True))
    staff.post("/deployments/alice-shop-main/extend/", {"days": "1"})
    d.refresh_from_db()
    assert d.expires_at is not None and d.expires_at < timezone.now() + timedelta(days=1, hours=1)


def test_destroy_queues_the_containers_delete(site: Any) -> None:
    alice = UserFactory(username="alice")
    d = deployment(site, alice)
    client = client_for(alice)
    response = client.post("/deployments/alice-shop-main/destroy/", {"confirm": "alice-shop-main"})
    assert response["Location"] == "/deployments/alice-shop-main/#job-h"
    d.refresh_from_db()
    assert d.state == DeploymentState.REMOVING
    delete = Job.objects.get(container=d.container, kind=JobKind.DELETE)
    page = client.get(response["Location"]).content.decode()
    assert f'data-job-events="/api/v1/jobs/{delete.pk}/events/"' in page
    assert "Removing" in page and "Destroy alice-shop-main" not in page


def test_destroy_without_a_container_removes_at_once(site: Any) -> None:
    alice = UserFactory(username="alice")
    d = deployment(site, alice)
    Container.objects.filter(pk=d.container_id).update(status="deleted")
    response = client_for(alice).post(
        "/deployments/alice-shop-main/destroy/", {"confirm": "alice-shop-main"}
    )
    assert response["Location"] == "/deployments/"
    d.refresh_from_db()
    assert d.state == DeploymentState.REMOVED


def test_an_extend_past_the_limit_says_the_services_words(site: Any, settings: Any) -> None:
    settings.DEPLOY_TTL_MAX_DAYS = 30
    alice = UserFactory(username="alice")
    d = deployment(site, alice)
    before = d.expires_at
    client = client_for(alice)
    response = client.post("/deployments/alice-shop-main/extend/", {"days": "31"})
    page = client.get(response["Location"]).content.decode()
    assert 'id="days-error"' in page and "extend by 1 to 30 days" in page
    d.refresh_from_db()
    assert d.expires_at == before
