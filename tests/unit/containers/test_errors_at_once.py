"""Every mistake in one answer, on every face (issue #12, items 8 and 11).

The service collects each field's error before refusing (portal.errors.FieldErrors);
the API lists them all in `detail`, the create form beside each field; a failed form of
the container page comes back to that page with its input; the page offers a
collaborator only what a collaborator may do; new routes are for signed-in users.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from auth.models import Collaborator
from containers import services
from containers.models import Container, ContainerStatus, Job, JobKind, JobStatus
from containers.validation import normalise_hostname
from networking.models import RouteAccess
from portal.errors import Conflict, FieldErrors, ValidationFailed
from tests.api_contract import check
from tests.factories import UserFactory, make_site

pytestmark = pytest.mark.django_db

BAD_KEY = "ssh-rsa nonsense"
HOSTNAME_70 = "a" * 70


@pytest.fixture
def site() -> Any:
    return make_site(None)


@pytest.fixture
def alice() -> Any:
    return UserFactory(username="alice")


def client_of(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def running(site: Any, owner: Any, hostname: str = "web") -> Container:
    """A container as if its create job had run."""
    job = services.container_create(owner=owner, hostname=hostname, template=site.templates.get())
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED)
    Container.objects.filter(pk=job.container_id).update(status=ContainerStatus.RUNNING)
    return Container.objects.get(pk=job.container_id)


# -- the collector ---------------------------------------------------------------------------
def test_field_errors_raise_one_as_it_came_and_several_together() -> None:
    one = FieldErrors()
    with one.collect():
        raise ValidationFailed("hostname: no", code="invalid_hostname", field="hostname")
    with pytest.raises(ValidationFailed) as info:
        one.raise_if_any()
    assert (info.value.code, info.value.field_errors) == (
        "invalid_hostname",
        {"hostname": ["hostname: no"]},
    )

    several = FieldErrors()
    several.add("cores 9 is too many", field="cores", code="invalid_resources")
    several.add("disk 99 is too big", field="disk_gib", code="invalid_resources")
    several.add("cores must be odd", field="cores", code="invalid_resources")
    several.add("not today")
    with pytest.raises(ValidationFailed) as info:
        several.raise_if_any()
    assert info.value.code == "invalid"  # codes differ: the general one
    assert info.value.field_errors == {
        "cores": ["cores 9 is too many", "cores must be odd"],
        "disk_gib": ["disk 99 is too big"],
        "non_field_errors": ["not today"],
    }
    assert info.value.message == (
        "cores 9 is too many; disk 99 is too big; cores must be odd; not today"
    )
    FieldErrors().raise_if_any()  # nothing collected: nothing raised


# -- the service -----------------------------------------------------------------------------
def test_the_service_names_every_wrong_field_at_once(site: Any, alice: Any) -> None:
    services.container_create(owner=alice, hostname="taken", template=site.templates.get())
    with pytest.raises(ValidationFailed) as info:
        services.container_create(
            owner=alice,
            hostname="TAKEN",  # folded to `taken`: held already, said along with the rest
            template=site.templates.get(),
            cores=9,
            memory_mib=9000,
            swap_mib=-1,
            disk_gib=65,
            ssh_public_keys=BAD_KEY,
            route_access="everyone",
        )
    errors = info.value.field_errors
    assert set(errors) == {
        "hostname",
        "cores",
        "memory_mib",
        "swap_mib",
        "disk_gib",
        "ssh_public_keys",
        "route_access",
    }
    assert errors["cores"] == ["cores 9 is outside 1-4 allowed for template debian-12"]
    assert errors["memory_mib"] == [
        "memory 9000 MiB is outside 64-8192 MiB allowed for template debian-12"
    ]
    assert errors["disk_gib"] == ["disk 65 GiB is outside 1-64 GiB allowed for template debian-12"]
    assert errors["hostname"] == ["hostname 'taken' is already taken on Local"]
    assert errors["route_access"] == ["route_access is one of public, users, owner"]
    assert Container.objects.count() == 1 and Job.objects.count() == 1


def test_a_taken_name_alone_is_still_the_409_conflict(site: Any, alice: Any) -> None:
    services.container_create(owner=alice, hostname="web", template=site.templates.get())
    with pytest.raises(Conflict) as info:
        services.container_create(owner=alice, hostname="web", template=site.templates.get())
    assert info.value.code == "hostname_taken"


def test_a_resize_names_every_wrong_field_at_once(site: Any, alice: Any) -> None:
    c = running(site, alice)
    with pytest.raises(ValidationFailed) as info:
        services.container_resize(container=c, actor=alice, cores=9, disk_gib=2)
    assert info.value.field_errors == {
        "cores": ["cores 9 is outside 1-4 allowed for template debian-12"],
        "disk_gib": ["disks only grow: web has 4 GiB, 2 GiB asked"],
    }


def test_a_70_character_hostname_is_refused_in_words_not_cut(site: Any, alice: Any) -> None:
    message = "hostname: 70 characters is too long; a hostname has at most 63"
    with pytest.raises(ValidationFailed, match=message):
        normalise_hostname(HOSTNAME_70)
    with pytest.raises(ValidationFailed, match=message):
        services.container_create(owner=alice, hostname=HOSTNAME_70, template=site.templates.get())
    assert normalise_hostname("a" * 63) == "a" * 63
    # The live check on the create form says the same.
    live = client_of(alice).get("/containers/check-hostname", {"hostname": HOSTNAME_70}).json()
    assert live == {"ok": False, "message": message}
    assert not Container.objects.exists()


# -- routes of new containers ------------------------------------------------------------------
def test_a_new_containers_route_is_for_signed_in_users_unless_chosen(site: Any, alice: Any) -> None:
    default = services.container_create(owner=alice, hostname="a", template=site.templates.get())
    assert default.container.routes.get().access == RouteAccess.USERS
    chosen = services.container_create(
        owner=alice, hostname="b", template=site.templates.get(), route_access=RouteAccess.OWNER
    )
    assert chosen.container.routes.get().access == RouteAccess.OWNER
    added = services.container_create(owner=alice, hostname="c", template=site.templates.get())
    from networking import publishing as network

    assert network.route_add(container=added.container, name="api", backend_port=8080).access == (
        RouteAccess.USERS
    )


# -- the API -----------------------------------------------------------------------------------
def api_create(client: Client, **body: Any) -> Any:
    return check(
        client.post(
            "/api/v1/containers/",
            {"hostname": "web", "template": "debian-12", **body},
            content_type="application/json",
        )
    )


def test_the_api_lists_every_field_error_in_detail(site: Any, alice: Any) -> None:
    response = api_create(
        client_of(alice),
        hostname="Bad_Name",
        cores=9,
        memory_mib=9000,
        ssh_public_keys=BAD_KEY,
    )
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"code", "message", "detail"}
    assert body["code"] == "invalid"
    assert set(body["detail"]) == {"hostname", "cores", "memory_mib", "ssh_public_keys"}
    assert all(isinstance(v, list) and v for v in body["detail"].values())
    for part in ("hostname: must be a DNS label", "cores 9 is outside", "memory 9000 MiB"):
        assert part in body["message"]
    assert not Container.objects.exists()


def test_the_api_adds_the_services_errors_to_the_serializers(site: Any, alice: Any) -> None:
    # The serializer refuses two fields; the service still checks the others.
    response = api_create(client_of(alice), hostname=HOSTNAME_70, memory_mib="lots", cores=9)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert set(body["detail"]) == {"hostname", "memory_mib", "cores"}
    assert body["detail"]["cores"] == ["cores 9 is outside 1-4 allowed for template debian-12"]
    assert (
        body["message"].startswith("hostname: ") and "cores: cores 9 is outside" in body["message"]
    )
    # An unknown template: the rest is still checked where it can be.
    response = api_create(client_of(alice), template="nope", hostname="Bad_Name")
    assert response.json()["detail"] == {
        "template": ["no template 'nope' on local (available: debian-12)"],
        "hostname": [
            "hostname: must be a DNS label: 1-63 lowercase letters, digits or hyphens, "
            "starting and ending with a letter or digit"
        ],
    }
    response = api_create(client_of(alice), template="nope", hostname="Bad_Name", cores="x")
    assert set(response.json()["detail"]) == {"template", "hostname", "cores"}
    # A template alone keeps its own answer.
    alone = api_create(client_of(alice), template="nope")
    assert alone.json()["detail"] == {
        "template": ["no template 'nope' on local (available: debian-12)"]
    }


def test_one_error_keeps_its_own_code(site: Any, alice: Any) -> None:
    response = api_create(client_of(alice), cores=9)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_resources"
    assert response.json()["detail"] == {
        "cores": ["cores 9 is outside 1-4 allowed for template debian-12"]
    }


def test_the_api_takes_route_access_and_defaults_to_signed_in_users(site: Any, alice: Any) -> None:
    client = client_of(alice)
    assert api_create(client, hostname="one").status_code == 202
    assert api_create(client, hostname="two", route_access="public").status_code == 202
    routes = dict(Container.objects.values_list("hostname", "routes__access"))
    assert routes == {"one": "users", "two": "public"}
    refused = api_create(client, hostname="three", route_access="everyone")
    assert refused.status_code == 400 and "route_access" in refused.json()["detail"]


# -- the create form ---------------------------------------------------------------------------
def test_the_create_form_shows_every_error_at_its_field_with_the_input(
    site: Any, alice: Any
) -> None:
    template = site.templates.get()
    response = client_of(alice).post(
        "/containers/new/",
        {
            "template": template.pk,
            "hostname": HOSTNAME_70,
            "cores": "9",
            "memory_mib": "lots",
            "disk_gib": "65",
            "ssh_public_keys": BAD_KEY,
            "route_access": "public",
        },
    )
    assert response.status_code == 400
    html = response.content.decode()
    for field in ("hostname", "cores", "memory_mib", "disk_gib"):
        assert f'id="{field}-error"' in html, field
    assert "70 characters is too long" in html
    assert "cores 9 is outside 1-4 allowed for template debian-12" in html
    assert "disk 65 GiB is outside 1-64 GiB" in html
    assert "Enter a whole number." in html  # the form's own word for "lots"
    assert "the SSH key&#x27;s data is not a valid ssh-rsa key" in html
    # The input as typed: nothing cut, nothing lost.
    assert f'value="{HOSTNAME_70}"' in html and 'maxlength="63"' not in html
    assert re.search(r'name="cores" value="9"', html) and 'value="lots"' in html
    assert re.search(r'value="public"[^>]*checked', html)
    assert not Container.objects.exists()


def test_the_number_inputs_carry_the_templates_limits(site: Any, alice: Any) -> None:
    html = client_of(alice).get("/containers/new/").content.decode()
    assert re.search(
        r'name="cores"[^>]*min="1"[^>]*max="4"|name="cores"[^>]*max="4"[^>]*min="1"', html
    )
    for field, low, high in (("memory_mib", 64, 8192), ("swap_mib", 0, 4096), ("disk_gib", 1, 64)):
        tag = re.search(rf'<input[^>]*name="{field}"[^>]*>', html)
        assert tag and f'min="{low}"' in tag[0] and f'max="{high}"' in tag[0], field
    # Each template's limits ride on its option, for the inputs to follow the choice.
    assert 'data-max-cores="4"' in html and 'data-max-memory_mib="8192"' in html
    # Who may open its web address: signed-in users, unless chosen otherwise.
    assert re.search(r'value="users"[^>]*checked', html)


def test_the_create_form_chooses_who_may_open_the_route(site: Any, alice: Any) -> None:
    client = client_of(alice)
    template = site.templates.get()
    client.post("/containers/new/", {"template": template.pk, "hostname": "dflt"})
    client.post(
        "/containers/new/", {"template": template.pk, "hostname": "mine", "route_access": "owner"}
    )
    routes = dict(Container.objects.values_list("hostname", "routes__access"))
    assert routes == {"dflt": "users", "mine": "owner"}


# -- the container page: back to it, errors at the form, input kept ------------------------------
def test_a_failed_resize_comes_back_to_the_page_with_its_input(site: Any, alice: Any) -> None:
    c = running(site, alice)
    client = client_of(alice)
    url = f"/containers/{c.pk}/resize/"
    response = client.post(
        url, {"cores": "9", "memory_mib": "512", "swap_mib": "512", "disk_gib": "2"}
    )
    assert response.status_code == 302 and response["Location"] == f"/containers/{c.pk}/#actions-h"
    html = client.get(response["Location"]).content.decode()
    assert 'id="resize-cores-error"' in html and 'id="resize-disk_gib-error"' in html
    assert "disks only grow: web has 4 GiB, 2 GiB asked" in html
    assert re.search(r'name="cores" value="9"', html)
    assert not c.jobs.filter(kind=JobKind.RESIZE).exists()
    # The resize inputs carry the template's limits too.
    assert re.search(r'<input[^>]*name="cores"[^>]*max="4"', html)


def test_a_wrong_delete_confirmation_is_said_at_the_form(site: Any, alice: Any) -> None:
    c = running(site, alice)
    client = client_of(alice)
    response = client.post(f"/containers/{c.pk}/delete/", {"confirm": "wbe"})
    assert response.status_code == 302
    html = client.get(response["Location"]).content.decode()
    assert 'id="confirm-error"' in html and "type web to delete it" in html
    assert 'name="confirm" value="wbe"' in html
    assert not c.jobs.filter(kind=JobKind.DELETE).exists()


def test_a_refused_start_is_said_in_the_actions(site: Any, alice: Any) -> None:
    c = running(site, alice)
    client = client_of(alice)
    response = client.post(f"/containers/{c.pk}/start/")
    assert response["Location"] == f"/containers/{c.pk}/#actions-h"
    html = client.get(response["Location"]).content.decode()
    actions = html[html.index('id="actions-h"') :]
    assert "cannot start web while it is running" in actions[: actions.index("<h3")]


def test_a_refused_request_keeps_its_reason(site: Any, alice: Any) -> None:
    c = running(site, alice)
    client = client_of(alice)
    client.post(
        f"/containers/{c.pk}/request-resize/",
        {
            "rq-cores": "2",
            "rq-memory_mib": "512",
            "rq-swap_mib": "512",
            "rq-disk_gib": "4",
            "reason": "short",
        },
    )
    html = client.get(f"/containers/{c.pk}/").content.decode()
    assert "say in a sentence why you need it" in html and "short</textarea>" in html
    assert "<details open>" in html


def test_a_collaborator_is_not_offered_resize_or_delete(site: Any, alice: Any) -> None:
    c = running(site, alice)
    bob = UserFactory(username="bob")
    Collaborator.objects.create(container=c, user=bob, added_by=alice)
    owner_page = client_of(alice).get(f"/containers/{c.pk}/").content.decode()
    assert ">Resize</button>" in owner_page and "Delete web</button>" in owner_page
    page = client_of(bob).get(f"/containers/{c.pk}/").content.decode()
    assert ">Stop</button>" in page and ">Restart</button>" in page
    assert ">Resize</button>" not in page and "Delete web</button>" not in page
    assert "Ask staff for a bigger" not in page
    # Posting anyway is refused, and said at the top (no form of his to show it at).
    response = client_of(bob).post(f"/containers/{c.pk}/delete/", {"confirm": "web"}, follow=True)
    assert "a collaborator may not delete web; ask its owner" in response.content.decode()
    assert not c.jobs.filter(kind=JobKind.DELETE).exists()


def test_a_retried_create_keeps_the_owners_choice_of_route_access(site: Any, alice: Any) -> None:
    from containers.failed_creates import failed_create_retry

    job = services.container_create(
        owner=alice, hostname="shop", template=site.templates.get(), route_access="public"
    )
    assert job.params["route_access"] == "public"
    services.container_set_status(container=job.container, to=ContainerStatus.DELETED)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.FAILED)
    again = failed_create_retry(container=job.container, actor=alice)
    assert again.container.routes.get().access == "public"
