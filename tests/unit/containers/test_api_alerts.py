"""Noisy-neighbour alerts in the REST API: the container object carries its open alerts
(prefetched: the list's query count stays flat), and GET /api/v1/alerts/ lists the raised
alerts of the caller's containers (staff: all), open by default. Every response is checked
against the OpenAPI document."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from auth.models import Collaborator
from containers.metrics.models import AlertKind, ContainerAlert
from containers.models import Container, ContainerStatus
from tests.api_contract import check
from tests.factories import UserFactory, make_containers, make_site

pytestmark = pytest.mark.django_db

T0 = timezone.now().replace(microsecond=0) - timedelta(hours=1)


def login(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def alert(
    container: Container, kind: str = AlertKind.CPU, *, state: str = "open", **kw: Any
) -> Any:
    """A row as the poll leaves it: pending (not raised), open, or cleared."""
    times = {
        "pending": {},
        "open": {"raised_at": T0 + timedelta(minutes=5)},
        "cleared": {
            "raised_at": T0 + timedelta(minutes=5),
            "cleared_at": T0 + timedelta(minutes=9),
        },
    }[state]
    message = "CPU at 100% of its cores" if kind == AlertKind.CPU else "memory at 96% of its limit"
    return ContainerAlert.objects.create(
        container=container, kind=kind, since=T0, value=0.96, message=message, **{**times, **kw}
    )


@pytest.fixture
def world() -> dict[str, Any]:
    site = make_site(None)
    made = make_containers(site, 5)
    other = UserFactory()
    Container.objects.filter(pk__in=[c.pk for c in made[3:]]).update(owner=other)
    mine, theirs = made[:3], list(Container.objects.filter(owner=other).order_by("vmid"))
    return {"site": site, "mine": mine, "theirs": theirs, "owner": mine[0].owner}


# -- on the container object -------------------------------------------------------------------
def test_the_container_object_carries_its_open_alerts(world: dict[str, Any]) -> None:
    a, b, c = world["mine"]
    open_memory = alert(a, AlertKind.MEMORY)
    alert(a, AlertKind.CPU, state="pending")  # not yet an alert: never shown
    alert(b, AlertKind.CPU, state="cleared")  # over: in /alerts/?state=all, not here
    client = login(world["owner"])

    listed = check(client.get("/api/v1/containers/")).json()["results"]
    by_name = {row["hostname"]: row for row in listed}
    assert by_name[a.hostname]["alerts"] == [
        {
            "id": open_memory.pk,
            "kind": "memory",
            "since": T0.isoformat().replace("+00:00", "Z"),
            "raised_at": (T0 + timedelta(minutes=5)).isoformat().replace("+00:00", "Z"),
            "value": 0.96,
            "message": "memory at 96% of its limit",
        }
    ]
    assert by_name[b.hostname]["alerts"] == [] and by_name[c.hostname]["alerts"] == []
    one = check(client.get(f"/api/v1/containers/{a.pk}/")).json()
    assert [x["kind"] for x in one["alerts"]] == ["memory"]


def test_the_container_list_stays_flat_with_alerts(world: dict[str, Any]) -> None:
    staff = login(UserFactory(is_staff=True))
    with CaptureQueriesContext(connection) as few:
        check(staff.get("/api/v1/containers/?page_size=5"))
    many = make_containers(make_site(None, slug="more"), 30, first_vmid=3000)
    for i, c in enumerate(many):
        alert(c, AlertKind.CPU)
        if i % 2:
            alert(c, AlertKind.MEMORY)
    with CaptureQueriesContext(connection) as big:
        body = check(staff.get("/api/v1/containers/?page_size=50")).json()
    assert len(big) == len(few), [q["sql"][:80] for q in big.captured_queries]
    rows = {row["hostname"]: row for row in body["results"]}
    assert [x["kind"] for x in rows[many[1].hostname]["alerts"]] == ["cpu", "memory"]
    assert [x["kind"] for x in rows[many[0].hostname]["alerts"]] == ["cpu"]


# -- GET /api/v1/alerts/ ------------------------------------------------------------------------
def test_alerts_are_the_callers_own_open_ones_by_default(world: dict[str, Any]) -> None:
    a, b, _c = world["mine"]
    x, y = world["theirs"]
    mine_open = alert(a, AlertKind.MEMORY)
    mine_cleared = alert(b, AlertKind.CPU, state="cleared")
    alert(b, AlertKind.MEMORY, state="pending")
    theirs_open = alert(x, AlertKind.CPU)
    collab = UserFactory(username="helper")
    Collaborator.objects.create(container=y, user=collab, added_by=y.owner)
    y_open = alert(y, AlertKind.CPU)

    owner = login(world["owner"])
    body = check(owner.get("/api/v1/alerts/")).json()
    assert body["count"] == 1
    [row] = body["results"]
    assert row == {
        "id": mine_open.pk,
        "container": a.pk,
        "hostname": a.hostname,
        "vmid": a.vmid,
        "site": world["site"].slug,
        "node": a.node.name,
        "kind": "memory",
        "state": "open",
        "since": T0.isoformat().replace("+00:00", "Z"),
        "raised_at": (T0 + timedelta(minutes=5)).isoformat().replace("+00:00", "Z"),
        "cleared_at": None,
        "value": 0.96,
        "message": "memory at 96% of its limit",
    }
    every = check(owner.get("/api/v1/alerts/", {"state": "all"})).json()["results"]
    assert sorted(r["id"] for r in every) == sorted([mine_open.pk, mine_cleared.pk])
    cleared = check(owner.get("/api/v1/alerts/", {"state": "cleared"})).json()["results"]
    assert [(r["id"], r["state"]) for r in cleared] == [(mine_cleared.pk, "cleared")]
    assert check(owner.get("/api/v1/alerts/", {"state": "open"})).json()["count"] == 1

    # A collaborator sees the alerts of the container they share; staff see everyone's.
    shared = check(login(collab).get("/api/v1/alerts/")).json()["results"]
    assert [r["id"] for r in shared] == [y_open.pk]
    staff = login(UserFactory(is_staff=True))
    assert sorted(r["id"] for r in check(staff.get("/api/v1/alerts/")).json()["results"]) == sorted(
        [mine_open.pk, theirs_open.pk, y_open.pk]
    )
    # Another's alert is 404, never 403; one's own, open or cleared, is there.
    assert check(owner.get(f"/api/v1/alerts/{theirs_open.pk}/")).status_code == 404
    assert check(owner.get(f"/api/v1/alerts/{mine_cleared.pk}/")).json()["state"] == "cleared"
    assert check(owner.get("/api/v1/alerts/99999999999999/")).status_code == 404


def test_alerts_filter_page_and_refuse_bad_queries(world: dict[str, Any]) -> None:
    a, b, c = world["mine"]
    for container in (a, b, c):
        alert(container, AlertKind.CPU, raised_at=T0 + timedelta(minutes=container.vmid % 10))
    alert(a, AlertKind.MEMORY)
    owner = login(world["owner"])
    cpu = check(owner.get("/api/v1/alerts/", {"kind": "cpu"})).json()
    # Newest raised first.
    assert [r["hostname"] for r in cpu["results"]] == [c.hostname, b.hostname, a.hostname]
    only_a = check(owner.get("/api/v1/alerts/", {"container": a.pk})).json()["results"]
    assert sorted(r["kind"] for r in only_a) == ["cpu", "memory"]
    page = check(owner.get("/api/v1/alerts/", {"page_size": 2})).json()
    assert page["count"] == 4 and len(page["results"]) == 2 and page["next"]
    assert check(owner.get("/api/v1/alerts/", {"site": "nowhere"})).json()["count"] == 0
    for bad in ({"state": "pending"}, {"kind": "disk"}, {"container": "x"}, {"page_size": "0"}):
        response = check(owner.get("/api/v1/alerts/", bad))
        assert response.status_code == 400, bad
        assert set(response.json()) == {"code", "message", "detail"}


def test_alerts_of_deleted_containers_are_not_listed(world: dict[str, Any]) -> None:
    a = world["mine"][0]
    alert(a, AlertKind.CPU, state="cleared")
    Container.objects.filter(pk=a.pk).update(status=ContainerStatus.DELETED)
    staff = login(UserFactory(is_staff=True))
    assert check(staff.get("/api/v1/alerts/", {"state": "all"})).json()["count"] == 0


def test_the_alert_list_query_count_is_flat(world: dict[str, Any]) -> None:
    staff = login(UserFactory(is_staff=True))
    alert(world["mine"][0])
    with CaptureQueriesContext(connection) as few:
        check(staff.get("/api/v1/alerts/?state=all&page_size=100"))
    for c in make_containers(make_site(None, slug="more"), 40, first_vmid=4000):
        alert(c, AlertKind.CPU, state="cleared")
        alert(c, AlertKind.MEMORY)
    with CaptureQueriesContext(connection) as many:
        body = check(staff.get("/api/v1/alerts/?state=all&page_size=100")).json()
    assert body["count"] == 81 and len(many) == len(few)
