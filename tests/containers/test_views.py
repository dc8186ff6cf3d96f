"""The GUI pages through Django's test client (the browser tests drive them for real)."""

from __future__ import annotations

import pytest
from django.test import Client

from containers import services
from containers.models import Container
from tests.factories import UserFactory, make_site

pytestmark = pytest.mark.django_db


@pytest.fixture
def site():
    return make_site(None)


@pytest.fixture
def alice_client():
    client = Client()
    client.force_login(UserFactory(username="alice"))
    return client


def test_dashboard_empty_state_says_how_to_start(site, alice_client) -> None:
    page = alice_client.get("/").content.decode()
    assert "You have no containers yet." in page
    assert 'href="/containers/new/"' in page


def test_create_form_shows_the_services_error_at_the_field(site, alice_client) -> None:
    template = site.templates.get()
    response = alice_client.post(
        "/containers/new/", {"template": template.pk, "hostname": "Bad_Name"}
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="hostname-error"' in html and "must be a DNS label" in html
    response = alice_client.post(
        "/containers/new/", {"template": template.pk, "hostname": "web", "cores": 9}
    )
    assert 'id="cores-error"' in response.content.decode()
    assert "cores 9 is outside 1-4 allowed for template debian-12" in response.content.decode()
    assert Container.objects.count() == 0


def test_create_redirects_to_the_container_page(site, alice_client) -> None:
    template = site.templates.get()
    response = alice_client.post("/containers/new/", {"template": template.pk, "hostname": "web"})
    c = Container.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/containers/{c.pk}/"
    page = alice_client.get(response["Location"]).content.decode()
    assert "web.apps.example.test" in page and f"/api/v1/jobs/{c.jobs.get().pk}/events/" in page


def test_another_users_container_is_404(site, alice_client) -> None:
    job = services.container_create(
        owner=UserFactory(username="bob"), hostname="bobs", template=site.templates.get()
    )
    assert alice_client.get(f"/containers/{job.container.pk}/").status_code == 404
    assert (
        alice_client.post(
            f"/containers/{job.container.pk}/delete/", {"confirm": "bobs"}
        ).status_code
        == 404
    )


def test_hostname_check(site, alice_client) -> None:
    services.container_create(
        owner=UserFactory(username="bob"), hostname="taken", template=site.templates.get()
    )
    assert alice_client.get("/containers/check-hostname", {"hostname": "taken"}).json() == {
        "ok": False,
        "message": "hostname 'taken' is already taken",
    }
    assert alice_client.get("/containers/check-hostname", {"hostname": "free-one"}).json() == {
        "ok": True,
        "hostname": "free-one",
    }
    assert (
        "DNS label"
        in alice_client.get("/containers/check-hostname", {"hostname": "-x"}).json()["message"]
    )


def test_dashboard_query_count_is_flat(site, alice_client, django_assert_max_num_queries) -> None:
    owner = UserFactory(username="alice")
    for i in range(3):
        services.container_create(owner=owner, hostname=f"a{i}", template=site.templates.get())
    with django_assert_max_num_queries(8) as few:
        alice_client.get("/")
    baseline = len(few.captured_queries)
    assert baseline > 0
    for i in range(3, 30):
        services.container_create(owner=owner, hostname=f"a{i}", template=site.templates.get())
    with django_assert_max_num_queries(baseline):
        alice_client.get("/")
