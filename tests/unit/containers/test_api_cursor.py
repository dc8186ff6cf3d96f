"""Walking the container list with a cursor (`?cursor=`, portal/api/keyset.py): each
container once while others come and go, filters and orderings as with page numbers,
nobody else's containers, the same queries on every page, and a cursor that was not
made here refused. Every response is validated against the OpenAPI document."""

from __future__ import annotations

import base64
import gc
import json
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from auth.models import Collaborator
from containers.metrics.models import AlertKind, ContainerAlert, ContainerSample
from containers.models import Container, ContainerStatus, Job, JobKind, JobStatus
from tests.api_contract import check
from tests.factories import UserFactory, make_containers, make_site

pytestmark = pytest.mark.django_db

LIST = "/api/v1/containers/"


@pytest.fixture
def site() -> Any:
    return make_site(None)


def client_of(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def page(client: Client, **params: Any) -> dict[str, Any]:
    response = check(client.get(LIST, params))
    assert response.status_code == 200, response.content
    return dict(response.json())


def cursor_of(body: dict[str, Any]) -> str | None:
    """The cursor of the `next` link (None on the last page)."""
    from urllib.parse import parse_qs, urlsplit

    if body["next"] is None:
        return None
    return parse_qs(urlsplit(body["next"]).query)["cursor"][0]


def walk(client: Client, between: Any = None, **params: Any) -> list[dict[str, Any]]:
    """Every container of a cursor walk, in order; `between(n, listed)` runs after page n,
    `listed` the containers listed so far."""
    seen: list[dict[str, Any]] = []
    body = page(client, cursor="", **params)
    n = 1
    while True:
        assert "count" not in body and "previous" not in body
        seen += body["results"]
        following = cursor_of(body)
        if following is None:
            return seen
        if between:
            between(n, seen)
        # The `next` link is the same query with the cursor after this page.
        assert body["next"].startswith("http://testserver/api/v1/containers/?")
        body = page(client, **{**params, "cursor": following})
        n += 1


def numbered(client: Client, **params: Any) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    for n in range(1, 1000):
        body = page(client, page=n, **params)
        seen += body["results"]
        if body["next"] is None:
            return seen
    raise AssertionError("no last page")


def sample(container: Container, *, cpu: float, mem: int) -> None:
    ContainerSample.objects.create(
        container=container,
        sampled_at=timezone.now(),
        pve_status="running",
        cpu=cpu,
        cpus=2,
        mem=mem,
        maxmem=512 << 20,
        disk=1 << 30,
        maxdisk=8 << 30,
        uptime=60,
    )


def churn(site: Any, owner: Any, first_vmid: int, count: int) -> Any:
    """Containers `first_vmid`... and what happens to others between two pages n and n+1
    of a walk: a container already listed and one not yet listed are deleted (as a
    finished delete leaves them), one is created behind the walk (a VMID below all) and
    one ahead of it (above all). Returns (made, between, what happened)."""
    made = make_containers(site, count, first_vmid=first_vmid, owner=owner)
    last = first_vmid + count - 1
    happened: dict[str, set[int]] = {
        k: set() for k in ("gone_seen", "gone_ahead", "behind", "ahead")
    }

    def between(n: int, listed: list[dict[str, Any]]) -> None:
        listed_last = listed[-1]["vmid"]
        for vmid, kind in ((listed_last - 2, "gone_seen"), (listed_last + 3, "gone_ahead")):
            if (
                vmid <= last
                and Container.objects.filter(vmid=vmid, status=ContainerStatus.RUNNING).exists()
            ):
                Container.objects.filter(vmid=vmid).update(status=ContainerStatus.DELETED)
                happened[kind].add(vmid)
        happened["behind"].add(
            make_containers(site, 1, first_vmid=first_vmid - 100 + n, owner=owner)[0].vmid
        )
        happened["ahead"].add(
            make_containers(site, 1, first_vmid=last + 100 + n, owner=owner)[0].vmid
        )

    return made, between, happened


def test_a_walk_sees_each_container_once_while_others_are_created_and_deleted(site) -> None:
    owner = UserFactory(username="alice")
    made, between, happened = churn(site, owner, 1000, 40)
    seen = [c["vmid"] for c in walk(client_of(owner), between, page_size=6)]
    assert len(happened["gone_ahead"]) >= 5 and len(happened["behind"]) >= 6

    assert len(seen) == len(set(seen)), "a container was listed twice"
    throughout = {c.vmid for c in made} - happened["gone_seen"] - happened["gone_ahead"]
    assert throughout <= set(seen), f"missed {sorted(throughout - set(seen))}"
    assert seen == sorted(seen)  # the default order: site, then VMID
    # Deleted once listed: listed (once). Deleted before the walk came to it, or created
    # behind it: not listed. Created ahead of it: listed.
    assert happened["gone_seen"] <= set(seen)
    assert not (happened["gone_ahead"] | happened["behind"]) & set(seen)
    assert happened["ahead"] <= set(seen)


def test_the_same_changes_make_numbered_pages_miss_containers(site) -> None:
    """What the cursor is for: under the changes above, OFFSET pages (rows counted from
    the start) skip containers that existed throughout, so the test above can fail."""
    owner = UserFactory(username="alice")
    made, between, happened = churn(site, owner, 1000, 40)
    client, listed = client_of(owner), []
    for n in range(1, 100):
        body = page(client, page=n, page_size=6)
        listed += body["results"]
        if body["next"] is None:
            break
        between(n, listed)
    seen = [c["vmid"] for c in listed]
    throughout = {c.vmid for c in made} - happened["gone_seen"] - happened["gone_ahead"]
    assert throughout - set(seen) or len(seen) != len(set(seen))


def test_the_cursor_keeps_the_filters(site) -> None:
    owner = UserFactory(username="alice")
    made = make_containers(site, 25, first_vmid=2000, owner=owner)
    Container.objects.filter(vmid__in=[2003, 2010, 2017, 2024]).update(
        status=ContainerStatus.STOPPED
    )
    client = client_of(owner)
    for params in (
        {"status": "stopped"},
        {"hostname": "m201"},  # m2010-m2019
        {"node": made[0].node.name},
        {"site": site.slug, "vmid": "2012"},
        {"status": "running", "hostname": "m20"},
    ):
        everything = numbered(client, page_size=200, **params)
        assert everything, params
        assert walk(client, page_size=3, **params) == everything, params
    assert [c["vmid"] for c in walk(client, page_size=2, status="stopped")] == [
        2003,
        2010,
        2017,
        2024,
    ]


@pytest.mark.parametrize(
    "ordering", ["-cpu", "-mem", "cpu", "hostname", "-vmid", "-created_at", "status,-vmid"]
)
def test_the_cursor_follows_every_ordering_ties_included(site, ordering: str) -> None:
    owner = UserFactory(username="alice")
    made = make_containers(site, 23, first_vmid=3000, owner=owner)
    other_site = make_site(None, slug="north", name="North", domain="apps.north.test")
    made += make_containers(other_site, 9, first_vmid=3000, owner=owner)  # same VMIDs
    for n, c in enumerate(made[:27]):  # the rest have no sample: last when descending
        sample(c, cpu=(n % 4) / 4, mem=(n % 3) << 20)  # many ties
    Container.objects.filter(vmid__in=[3001, 3005]).update(status=ContainerStatus.STOPPED)
    client = client_of(owner)
    everything = numbered(client, page_size=200, ordering=ordering)
    assert len(everything) == 32
    walked = walk(client, page_size=4, ordering=ordering)
    assert [c["id"] for c in walked] == [c["id"] for c in everything]


def test_others_containers_are_never_walked_into(site) -> None:
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    mine = make_containers(site, 5, first_vmid=4000, owner=alice)
    bobs = make_containers(site, 10, first_vmid=4005, owner=bob)
    Collaborator.objects.create(container=bobs[7], user=alice)
    alice_client = client_of(alice)
    seen = [c["vmid"] for c in walk(alice_client, page_size=2)]
    assert seen == [c.vmid for c in mine] + [bobs[7].vmid]
    # Bob's own cursor, taken to alice's session, walks alice's list from its position.
    bobs_page = page(client_of(bob), cursor="", page_size=3)
    assert [c["vmid"] for c in bobs_page["results"]] == [4005, 4006, 4007]
    after_bobs = page(alice_client, cursor=cursor_of(bobs_page), page_size=50)
    assert [c["vmid"] for c in after_bobs["results"]] == [bobs[7].vmid]
    # A forged position shows nothing more: the visibility filter comes first.
    forged = forge(["site_id", "vmid"], [site.pk, 0])
    assert [c["vmid"] for c in page(alice_client, cursor=forged)["results"]] == seen
    assert check(alice_client.get(f"{LIST}{bobs[0].pk}/")).status_code == 404
    # A stranger walks an empty list.
    stranger = page(client_of(UserFactory(username="eve")), cursor="")
    assert stranger == {"next": None, "results": []}


def test_queries_per_page_are_the_same_first_middle_and_last(site) -> None:
    owner = UserFactory(username="alice")
    made = make_containers(site, 30, first_vmid=5000, owner=owner)
    now = timezone.now()
    for n, c in enumerate(made):
        sample(c, cpu=0.5, mem=n)
        if n % 3 == 0:
            ContainerAlert.objects.create(
                container=c, kind=AlertKind.MEMORY, since=now, raised_at=now, value=0.97
            )
        if n % 4 == 0:
            Job.objects.create(container=c, kind=JobKind.START, status=JobStatus.QUEUED)
    client = client_of(owner)
    # Each container with its active job and open alerts, as a container's own page has them.
    listed = walk(client, page_size=8)
    assert [bool(c["alerts"]) for c in listed] == [n % 3 == 0 for n in range(30)]
    assert [c["active_job"] is not None for c in listed] == [n % 4 == 0 for n in range(30)]
    assert listed[0] == check(client.get(f"{LIST}{made[0].pk}/")).json()
    counts = []
    body = page(client, cursor="", page_size=8)
    while True:
        following = cursor_of(body)
        if following is None:
            break
        with CaptureQueriesContext(connection) as queries:
            body = page(client, cursor=following, page_size=8)
        counts.append(len(queries))
    with CaptureQueriesContext(connection) as queries:
        page(client, cursor="", page_size=8)
    assert len(counts) == 3 and set(counts) == {len(queries)}, (len(queries), counts)
    # No count query: one fewer than a numbered page.
    with CaptureQueriesContext(connection) as numbered_queries:
        page(client, page=2, page_size=8)
    assert len(numbered_queries) == len(queries) + 1


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def forge(ordering: list[str], values: list[Any]) -> str:
    return b64(json.dumps({"o": ordering, "v": values}))


@pytest.mark.parametrize(
    ("params", "said"),
    [
        ({"cursor": "not a cursor!"}, "not a cursor of this list"),
        ({"cursor": forge(["hostname", "site_id", "vmid"], ["a", 1, 2])}, "another ordering"),
        ({"cursor": forge(["site_id", "vmid"], [1])}, "not a cursor of this list"),
        ({"cursor": forge(["site_id", "vmid"], [1, "x"])}, "vmid is not a value of its field"),
        ({"cursor": forge(["site_id", "vmid"], [1, 2**70])}, "vmid is not a value of its field"),
        ({"cursor": forge(["site_id", "vmid"], [1, None])}, "vmid is not a value"),
        ({"cursor": forge(["site_id", "vmid"], [1, True])}, "vmid is not a value"),
        ({"cursor": forge(["site_id", "vmid"], [[1], 2])}, "site_id is not a value"),
        ({"cursor": forge(["-cpu", "site_id", "vmid"], ["NaN", 1, 2]), "ordering": "-cpu"}, "cpu"),
        (
            {"cursor": forge(["-cpu", "site_id", "vmid"], ["1e999", 1, 2]), "ordering": "-cpu"},
            "cpu",
        ),
        ({"cursor": b64('{"o":["site_id","vmid"],"v":[NaN,1]}')}, "not a cursor of this list"),
        (
            {
                "cursor": forge(["-created_at", "site_id", "vmid"], ["soon", 1, 2]),
                "ordering": "-created_at",
            },
            "created_at is not a value of its field",
        ),
        ({"cursor": "x" * 3000}, "too long"),
        ({"cursor": "", "page": "2"}, "page and cursor exclude each other"),
        ({"cursor": "", "page_size": "1001"}, "page_size is a whole number from 1 to 1000"),
        ({"page_size": "1001"}, "page_size is a whole number from 1 to 1000"),
    ],
)
def test_a_cursor_not_made_here_is_a_400(site, params: dict[str, str], said: str) -> None:
    client = client_of(UserFactory(username="alice"))
    response = check(client.get(LIST, params))
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "invalid" and said in body["message"], body


def test_numbered_pages_still_work_and_ties_no_longer_straddle_pages(site) -> None:
    owner = UserFactory(username="alice")
    make_containers(site, 12, first_vmid=6000, owner=owner)
    client = client_of(owner)
    first = page(client, page_size=5)
    assert first["count"] == 12 and first["previous"] is None
    assert first["next"].endswith("page=2&page_size=5")
    # Every container has the same status: the tie is broken by site and VMID.
    by_status = numbered(client, page_size=5, ordering="status")
    assert [c["vmid"] for c in by_status] == list(range(6000, 6012))


def test_the_default_order_is_read_from_the_partial_unique_index(site) -> None:
    """The cursor's query walks the (site, VMID) index from the position, in its order:
    no sort of the rows after it, whatever their number (the last page costs the first's)."""
    from containers import selectors
    from containers.api.views import ContainerViewSet
    from portal.api import keyset

    owner = UserFactory(username="alice")
    make_containers(site, 50, first_vmid=7000, owner=owner)
    root = UserFactory(username="root", is_staff=True)
    queryset = selectors.api_containers(root, many=True).order_by("site_id", "vmid")
    keys = keyset.keyed_ordering(queryset, ContainerViewSet.cursor_key)
    row = queryset[10]
    position = keyset.decode(keyset.encode(keys, row), keys, queryset)
    query = queryset.filter(keyset.after(keys, position))[:51]
    assert [c.vmid for c in query][:3] == [7011, 7012, 7013]
    sql, params = query.query.sql_with_params()
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
            plan = " | ".join(str(r[-1]) for r in cursor.fetchall())
            assert "USING INDEX containers_container_unique_vmid_per_site" in plan, plan
            assert "(site_id,vmid)>(?,?)" in plan.replace(" ", ""), plan
            assert "TEMP B-TREE" not in plan, plan
        else:  # PostgreSQL: the index can serve it (tiny tables are otherwise scanned)
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("SET LOCAL enable_sort = off")
            cursor.execute(f"EXPLAIN {sql}", params)
            plan = " | ".join(r[0] for r in cursor.fetchall())
            assert "containers_container_unique_vmid_per_site" in plan, plan
            assert "Index Cond: (ROW(" in plan and "Sort" not in plan, plan


def test_a_pages_rows_are_freed_before_the_collector_resumes(site) -> None:
    """The list builds its page with the cyclic collector paused; its rows must go by
    reference counting when it is done (a container and its sample refer to each other
    as select_related leaves them), not wait for one scan of them all."""
    owner = UserFactory(username="alice")
    for c in make_containers(site, 5, first_vmid=7000, owner=owner):
        sample(c, cpu=0.1, mem=1)
    del c  # the test's own objects are not the list's
    client = client_of(owner)
    page(client, cursor="")  # the first request sets up what lives on
    gc.collect()
    gc.disable()
    try:
        # Rows alive before (other tests' in this process): kept, so their ids stay theirs.
        before = [o for o in gc.get_objects() if type(o) in (Container, ContainerSample)]
        known = {id(o) for o in before}
        listed = page(client, cursor="", page_size=5)["results"]
        left = [
            o
            for o in gc.get_objects()
            if type(o) in (Container, ContainerSample) and id(o) not in known
        ]
    finally:
        gc.enable()
    assert [c["metrics"]["cpu"] for c in listed] == [0.1] * 5
    assert left == []
