"""Caps on published ports and routes: per container and per user, in the quota system
(policies, overrides, requests), enforced under the container's lock, shown before use."""

from __future__ import annotations

import threading

import pytest
from django.contrib.auth.models import Group
from django.db import connections
from django.test import Client

from auth import quota_overrides
from auth.forms import QuotaRequestForm
from auth.models import GroupPolicy, QuotaOverride
from containers import resource_requests, services
from containers.models import Container, Job
from containers.selectors import user_quota
from networking import publishing as network
from networking.models import PortMapping, Route
from portal.errors import QuotaExceeded
from tests.api_contract import check
from tests.factories import UserFactory, make_site

pytestmark = pytest.mark.django_db


@pytest.fixture
def site():
    return make_site(None)


def policy(group: str | None = None, **limits) -> GroupPolicy:
    g = Group.objects.get_or_create(name=group)[0] if group else None
    return GroupPolicy.objects.create(group=g, **limits)


def built(site, owner, hostname) -> Container:
    """A container as if its create job had run."""
    c = services.container_create(
        owner=owner, hostname=hostname, template=site.templates.get()
    ).container
    Job.objects.filter(container=c).update(status="succeeded")
    Container.objects.filter(pk=c.pk).update(status="running")
    c.refresh_from_db()
    return c


def publish(c: Container, port: int, protocol: str = "udp") -> PortMapping:
    return network.port_mapping_add(
        container=c, container_port=port, protocol=protocol, name=f"p{port}", actor=c.owner
    )


def test_published_ports_are_capped_per_container_then_per_user(site) -> None:
    policy(max_container_ports=2, max_ports=3)
    owner = UserFactory()
    a, b = built(site, owner, "a"), built(site, owner, "b")
    publish(a, 1000)
    publish(a, 1001, "tcp")  # the SSH port of each container is not counted
    with pytest.raises(QuotaExceeded) as info:
        publish(a, 1002)
    assert info.value.message == (
        "quota exceeded: a already publishes 2 ports; 2 allowed per container by the default policy"
    )
    assert info.value.extra["limit"] == "max_container_ports"
    publish(b, 2000)
    with pytest.raises(QuotaExceeded) as info:
        publish(b, 2001)
    assert info.value.message == (
        "quota exceeded: published ports 3 in use + 1 requested > 3 allowed by the default policy"
    )
    assert info.value.extra["limit"] == "max_ports"
    assert PortMapping.objects.filter(container__owner=owner).count() == 2 + 3
    # Unpublishing frees room again.
    network.port_mapping_delete(mapping=a.port_mappings.get(name="p1000"), actor=owner)
    publish(b, 2001)


def test_routes_are_capped_per_container_then_per_user(site) -> None:
    policy(max_container_routes=1, max_routes=2)
    owner = UserFactory()
    a, b, c = built(site, owner, "a"), built(site, owner, "b"), built(site, owner, "c")
    network.route_add(container=a, name="api", backend_port=8080, actor=owner)
    with pytest.raises(QuotaExceeded) as info:
        network.route_add(container=a, name="www", backend_port=8081, actor=owner)
    assert info.value.message == (
        "quota exceeded: a already has 1 route besides its own name; "
        "1 allowed per container by the default policy"
    )
    network.route_add(container=b, name="api", backend_port=8080, actor=owner)
    with pytest.raises(QuotaExceeded, match="routes 2 in use \\+ 1 requested > 2 allowed"):
        network.route_add(container=c, name="api", backend_port=8080, actor=owner)
    assert not Route.objects.filter(container=c, name="api").exists()


def test_overrides_and_staff_exemption_apply_to_ports(site) -> None:
    policy(max_container_ports=0)
    owner, staff = UserFactory(), UserFactory(is_staff=True)
    a = built(site, owner, "a")
    with pytest.raises(QuotaExceeded):
        publish(a, 1000)
    quota_overrides.quota_override_create(
        user=owner, actor=staff, reason="a game server", limits={"max_container_ports": 1}
    )
    publish(a, 1000)
    # Staff publishing for the owner still count against the owner's quota.
    with pytest.raises(QuotaExceeded):
        network.port_mapping_add(container=a, container_port=1001, name="x", actor=staff)
    mine = built(site, staff, "staffbox")
    for port in range(3):
        publish(mine, 3000 + port)  # staff are exempt


def test_the_limits_are_bounded_by_their_column() -> None:
    from django.core.exceptions import ValidationError

    row = QuotaOverride(user=UserFactory(), max_ports=2**63)
    with pytest.raises(ValidationError) as info:
        row.full_clean()
    assert "max_ports" in info.value.message_dict
    form = QuotaRequestForm({"max_container_routes": str(2**63), "reason": "x" * 20})
    assert not form.is_valid() and "max_container_routes" in form.errors


def test_the_api_answers_409_naming_the_limit(site) -> None:
    policy(max_container_ports=1)
    owner = UserFactory()
    a = built(site, owner, "a")
    client = Client()
    client.force_login(owner)
    url = f"/api/v1/containers/{a.pk}/ports/"
    body = {"name": "game", "container_port": 27015, "protocol": "udp"}
    assert check(client.post(url, body, content_type="application/json")).status_code == 201
    body["container_port"] = 27016
    r = check(client.post(url, body, content_type="application/json"))
    assert r.status_code == 409
    assert r.json()["code"] == "quota_exceeded"
    assert "1 allowed per container" in r.json()["message"]


def test_the_caps_are_shown_on_the_profile_and_the_create_form(site) -> None:
    policy(max_container_ports=4, max_ports=9, max_container_routes=3, max_routes=7)
    owner = UserFactory()
    a = built(site, owner, "a")
    publish(a, 1000)
    status = user_quota(owner)
    assert (status.usage.ports, status.usage.routes) == (1, 0)
    assert status.remaining["max_ports"] == 8 and status.remaining["max_container_ports"] == 4
    client = Client()
    client.force_login(owner)
    profile = client.get("/accounts/").content.decode()
    create = client.get("/containers/new/").content.decode()
    for page in (profile, create):
        assert "Published ports" in page and "Routes" in page
    assert "<td>9</td>" in profile and "<td>7</td>" in profile
    assert ">8<" in create.replace("</td>", "<") and ">4<" in create.replace("</td>", "<")


def test_more_ports_are_asked_for_and_granted_through_a_resource_request(site) -> None:
    policy(max_container_ports=1, max_ports=1)
    owner, staff = UserFactory(), UserFactory(is_staff=True)
    a = built(site, owner, "a")
    publish(a, 1000)
    client = Client()
    client.force_login(owner)
    r = client.post(
        "/accounts/requests/",
        {"max_container_ports": "3", "max_ports": "3", "reason": "A course needs three ports."},
    )
    assert r.status_code == 302, r.content.decode()[:2000]
    row = owner.resource_requests.get()
    assert row.limits == {"max_container_ports": 3, "max_ports": 3}
    resource_requests.resource_request_approve(request=row, actor=staff)
    publish(a, 1001)
    publish(a, 1002)
    with pytest.raises(QuotaExceeded):
        publish(a, 1003)
    # The API carries them too, and so does its approve.
    api = check(
        client.post(
            "/api/v1/resource-requests/",
            {"kind": "quota", "limits": {"max_routes": 5}, "reason": "And some routes, please."},
            content_type="application/json",
        )
    )
    assert api.status_code == 201, api.content
    assert api.json()["limits"] == {"max_routes": 5}
    desk = Client()
    desk.force_login(staff)
    approved = check(
        desk.post(
            f"/api/v1/resource-requests/{api.json()['id']}/approve/",
            {},
            content_type="application/json",
        )
    )
    assert approved.status_code == 200, approved.content
    assert user_quota(owner).limits["max_routes"].value == 5


@pytest.mark.django_db(transaction=True)
def test_concurrent_publishes_never_pass_the_cap(site, monkeypatch) -> None:
    monkeypatch.setattr("networking.services.enqueue_apply", lambda site_id, slug=None: None)
    policy(max_container_ports=5)
    owner = UserFactory()
    a = built(site, owner, "a")
    start = threading.Barrier(12)
    outcomes: list[str] = []

    def add(i: int) -> None:
        try:
            start.wait()
            publish(a, 5000 + i)
            outcomes.append("ok")
        except QuotaExceeded:
            outcomes.append("refused")
        except BaseException as exc:  # reported below
            outcomes.append(repr(exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=add, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["ok"] * 5 + ["refused"] * 7
    assert a.port_mappings.exclude(name="ssh").count() == 5
