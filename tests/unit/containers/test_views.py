"""The GUI pages through Django's test client (the browser tests drive them for real)."""

from __future__ import annotations

import pytest
from django.test import Client

from containers import services
from containers.models import Container, Job
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


def test_ssh_command_is_the_gateway_mapping_for_the_viewer(site, alice_client) -> None:
    alice = UserFactory(username="alice")
    job = services.container_create(owner=alice, hostname="web", template=site.templates.get())
    c = job.container
    port = c.port_mappings.get(name="ssh").external_port
    expected = f"ssh -p {port} alice@web.apps.example.test"
    assert c.ssh_command == expected
    assert f'data-copy="{expected}"' in alice_client.get("/").content.decode()
    page = alice_client.get(f"/containers/{c.pk}/").content.decode()
    assert f'data-copy="{expected}"' in page
    assert "https://web.apps.example.test/" in page and "Anyone" in page  # the route's access
    assert f"TCP {port}" in page


def test_collaborators_added_listed_and_removed_by_the_owner_only(site, alice_client) -> None:
    from auth.models import Collaborator
    from containers.models import ContainerStatus

    alice = UserFactory(username="alice")
    UserFactory(username="carol")
    job = services.container_create(owner=alice, hostname="web", template=site.templates.get())
    c = job.container
    # As if the create job had run: the container is up and no job is active.
    Container.objects.filter(pk=c.pk).update(status=ContainerStatus.RUNNING)
    Job.objects.filter(pk=job.pk).update(status="succeeded")
    url = f"/containers/{c.pk}/collaborators/add/"
    # A refusal goes back to the container page (never left on the POST-only URL), with
    # the error at the field and the name as typed.
    response = alice_client.post(url, {"username": "nobody"})
    assert response.status_code == 302
    assert response["Location"] == f"/containers/{c.pk}/#collab-h"
    html = alice_client.get(response["Location"]).content.decode()
    assert 'id="collab-error"' in html and "no user named &#x27;nobody&#x27;" in html
    assert 'value="nobody"' in html and 'aria-invalid="true"' in html
    # Shown once: a reload is a clean page.
    assert 'id="collab-error"' not in alice_client.get(f"/containers/{c.pk}/").content.decode()
    response = alice_client.post(url, {"username": "alice"}, follow=True)
    assert "alice owns web already" in response.content.decode()
    assert alice_client.post(url, {"username": "carol"}).status_code == 302
    assert Collaborator.objects.filter(container=c, user__username="carol").exists()
    page = alice_client.get(f"/containers/{c.pk}/").content.decode()
    assert 'data-collaborator="carol"' in page and 'aria-label="Remove carol"' in page

    # carol sees the list, her own SSH login, and no add/remove controls.
    Job.objects.filter(container=c).update(status="succeeded")
    carol = Client()
    carol.force_login(UserFactory(username="carol"))
    page = carol.get(f"/containers/{c.pk}/").content.decode()
    assert 'data-collaborator="carol"' in page and "Add collaborator" not in page
    assert "carol@web.apps.example.test" in page
    response = carol.post(url, {"username": "alice"}, follow=True)
    assert "a collaborator may not manage access web; ask its owner" in response.content.decode()
    carol.post(f"/containers/{c.pk}/collaborators/remove/", {"username": "carol"})
    assert Collaborator.objects.filter(container=c).count() == 1

    Job.objects.filter(container=c).update(status="succeeded")
    alice_client.post(f"/containers/{c.pk}/collaborators/remove/", {"username": "carol"})
    assert not Collaborator.objects.filter(container=c).exists()


def test_owner_changes_who_may_open_a_route_and_a_collaborator_may_not(site) -> None:
    from auth.models import AuditEntry, Collaborator

    owner = UserFactory(username="alice")
    job = services.container_create(owner=owner, hostname="web", template=site.templates.get())
    route = job.container.routes.get()
    owner_client = Client()
    owner_client.force_login(owner)
    page = owner_client.get(f"/containers/{job.container.pk}/").content.decode()
    assert f'id="access-{route.pk}"' in page
    response = owner_client.post(
        f"/containers/{job.container.pk}/routes/{route.pk}/access/", {"access": "owner"}
    )
    assert response.status_code == 302
    route.refresh_from_db()
    assert route.access == "owner"
    assert AuditEntry.objects.filter(action="route.update", actor=owner).exists()

    collab = UserFactory(username="carol")
    Collaborator.objects.create(container=job.container, user=collab, added_by=owner)
    collab_client = Client()
    collab_client.force_login(collab)
    assert (
        f'id="access-{route.pk}"'
        not in collab_client.get(f"/containers/{job.container.pk}/").content.decode()
    )
    collab_client.post(
        f"/containers/{job.container.pk}/routes/{route.pk}/access/", {"access": "public"}
    )
    route.refresh_from_db()
    assert route.access == "owner"
    stranger = Client()
    stranger.force_login(UserFactory(username="mallory"))
    assert (
        stranger.post(
            f"/containers/{job.container.pk}/routes/{route.pk}/access/", {"access": "public"}
        ).status_code
        == 404
    )


def test_the_owner_asks_for_a_bigger_container_from_its_page(site) -> None:
    from auth.models import ResourceRequest

    owner = UserFactory(username="alice")
    job = services.container_create(owner=owner, hostname="web", template=site.templates.get())
    services.container_set_status(container=job.container, to="provisioning")
    services.container_set_status(container=job.container, to="running")
    client = Client()
    client.force_login(owner)
    assert (
        "Ask staff for a bigger web"
        in client.get(f"/containers/{job.container.pk}/").content.decode()
    )
    client.post(
        f"/containers/{job.container.pk}/request-resize/",
        {
            "rq-cores": 4,
            "rq-memory_mib": 4096,
            "rq-swap_mib": 512,
            "rq-disk_gib": 20,
            "reason": "the test data set grew to 15 GiB",
        },
    )
    request = ResourceRequest.objects.get()
    assert (request.kind, request.container_id, request.cores, request.disk_gib) == (
        "resize",
        job.container.pk,
        4,
        20,
    )
    assert request.status == "pending"


@pytest.mark.parametrize("value", [str(2**63), str(2**31), str(2**40)])
@pytest.mark.parametrize("field", ["cores", "memory_mib", "swap_mib", "disk_gib"])
def test_sizes_beyond_any_container_are_refused_at_the_form(site, field, value) -> None:
    from auth.models import ResourceRequest

    owner = UserFactory(username="alice")
    job = services.container_create(owner=owner, hostname="web", template=site.templates.get())
    services.container_set_status(container=job.container, to="provisioning")
    services.container_set_status(container=job.container, to="running")
    client = Client()
    client.force_login(owner)
    create = client.post(
        "/containers/new/",
        {"template": site.templates.get().pk, "hostname": "big", field: value},
    )
    assert create.status_code == 400 and f'id="{field}-error"' in create.content.decode()
    size = {"cores": 1, "memory_mib": 512, "swap_mib": 0, "disk_gib": 8, field: value}
    url = f"/containers/{job.container.pk}"
    client.post(f"{url}/resize/", size)
    rq = {f"rq-{k}": v for k, v in size.items()}
    client.post(f"{url}/request-resize/", {**rq, "reason": "the data set grew a lot"})
    assert not ResourceRequest.objects.exists()
    assert list(Job.objects.values_list("kind", flat=True)) == ["create"]
    assert not Container.objects.filter(hostname="big").exists()


def test_dashboard_filters_take_any_text_without_a_server_error(site, alice_client) -> None:
    """A NUL byte once reached PostgreSQL (a 500); an `&` broke the pagination links."""
    for q in ("a\x00b", "x" * 5000, "a&status=running", "%00"):
        r = alice_client.get("/", {"q": q, "node": q, "owner": q})
        assert r.status_code == 200, q
    r = alice_client.get("/", {"q": "a&b"})
    assert "q=a%26b" in r.context["query"]


def test_a_failed_create_stays_on_the_dashboard_until_retried_or_dismissed(site) -> None:
    from tests.factories import make_failed_create

    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    client = Client()
    client.force_login(alice)
    broken = make_failed_create(alice, "broken", site)
    page = client.get("/").content.decode()
    assert "Could not be created" in page and "storage full" in page
    # Only its owner sees it or acts on it.
    other = Client()
    other.force_login(bob)
    assert "broken" not in other.get("/").content.decode()
    assert other.post(f"/containers/{broken.pk}/failed/retry/").status_code == 404
    # Try again: a new container of the same name, template and sizes; the old one is dismissed.
    r = client.post(f"/containers/{broken.pk}/failed/retry/")
    again = Container.objects.get(hostname="broken", status="pending")
    assert r.status_code == 302 and r["Location"] == f"/containers/{again.pk}/"
    assert (again.cores, again.memory_mib, again.template_id) == (
        broken.cores,
        broken.memory_mib,
        broken.template_id,
    )
    assert "Could not be created" not in client.get("/").content.decode()
    # Dismiss: gone from the dashboard, the row stays as history (the Deleted filter).
    gone = make_failed_create(alice, "gone", site)
    assert client.post(f"/containers/{gone.pk}/failed/dismiss/").status_code == 302
    assert "Could not be created" not in client.get("/").content.decode()
    deleted = client.get("/", {"status": "deleted"}).content.decode()
    assert 'data-hostname="gone"' in deleted and 'data-hostname="broken"' in deleted
    assert client.post(f"/containers/{gone.pk}/failed/retry/").status_code == 404


def test_a_deleted_containers_page_says_so_and_offers_no_actions(site, alice_client) -> None:
    from containers.models import ContainerStatus

    alice = Container._meta.get_field("owner").related_model.objects.get(username="alice")
    job = services.container_create(owner=alice, hostname="old", template=site.templates.get())
    services.container_set_status(container=job.container, to=ContainerStatus.DELETED)
    r = alice_client.get(f"/containers/{job.container_id}/")
    page = r.content.decode()
    assert r.status_code == 200 and "This container was deleted" in page
    assert (
        "/delete/" not in page and "/stop/" not in page and "<form" not in page.split("<main")[-1]
    )
    other = Client()
    other.force_login(UserFactory(username="eve"))
    assert other.get(f"/containers/{job.container_id}/").status_code == 404
