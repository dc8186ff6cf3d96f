"""The frame of every page through Django's test client (issue #12, item 9): the icon,
times that say their zone, where login and logout lead, and the staff's badge for
resource requests that wait (tests/functional/browser/test_layout.py drives the pages for real)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from django.contrib.staticfiles import finders
from django.db import connection
from django.template import Context, Template
from django.test import Client
from django.test.utils import CaptureQueriesContext

from containers import services
from containers.resource_requests import resource_request_create
from tests.factories import UserFactory, make_site

pytestmark = pytest.mark.django_db

PASSWORD = "layout-test-password"


@pytest.fixture
def site() -> Any:
    return make_site(None)


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def ask(n: int = 1) -> None:
    """`n` quota requests waiting, one per user (a user has one waiting at most)."""
    for i in range(n):
        user = UserFactory()
        resource_request_create(
            user=user, kind="quota", reason="for a course", limits={"max_containers": 4 + i}
        )


# -- the icon ------------------------------------------------------------------------------------
def test_every_page_links_the_local_icon(site: Any) -> None:
    page = client_for(UserFactory(username="alice")).get("/").content.decode()
    assert '<link rel="icon" href="/static/portal/favicon.svg" type="image/svg+xml">' in page
    icon = finders.find("portal/favicon.svg")
    assert icon is not None
    with open(icon, encoding="utf-8") as f:
        svg = f.read()
    assert svg.startswith("<svg") and "http://www.w3.org/2000/svg" in svg
    assert "href" not in svg  # nothing fetched from elsewhere
    # Pages without base.html (the admin, the API docs) ask for /favicon.ico.
    response = Client().get("/favicon.ico")
    assert response.status_code == 301 and response["Location"] == "/static/portal/favicon.svg"


# -- times -------------------------------------------------------------------------------------
def render_when(value: Any) -> str:
    return Template("{% load portal_ui %}{{ value|when }}").render(Context({"value": value}))


def test_times_say_their_zone(settings: Any) -> None:
    moment = datetime(2026, 1, 15, 21, 54, 30, tzinfo=UTC)
    assert render_when(moment) == (
        '<time datetime="2026-01-15T21:54:30+00:00">2026-01-15 21:54 UTC</time>'
    )
    settings.TIME_ZONE = "Europe/Berlin"
    assert render_when(moment) == (
        '<time datetime="2026-01-15T22:54:30+01:00">2026-01-15 22:54 CET</time>'
    )
    assert render_when(None) == ""


def test_the_container_page_labels_its_times(site: Any) -> None:
    alice = UserFactory(username="alice")
    job = services.container_create(owner=alice, hostname="web", template=site.templates.get())
    page = client_for(alice).get(f"/containers/{job.container_id}/").content.decode()
    created = re.search(r"<dt>Created</dt><dd>(.*?)</dd>", page)
    assert created and re.fullmatch(
        r'<time datetime="[^"]+">\d{4}-\d\d-\d\d \d\d:\d\d UTC</time>', created.group(1)
    )
    assert "Times in the log are UTC." in page


# -- login and logout ----------------------------------------------------------------------------
def test_login_lands_on_the_container_list_and_logout_says_so(site: Any, settings: Any) -> None:
    settings.LOCAL_LOGIN_FOR_USERS = True
    user = UserFactory(username="lena")
    user.set_password(PASSWORD)
    user.save()
    client = Client()
    response = client.post("/accounts/login/", {"username": "lena", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/"
    assert "My containers" in client.get("/").content.decode()
    # Already logged in: the login page sends there too.
    assert client.get("/accounts/login/")["Location"] == "/"

    response = client.post("/accounts/logout/", follow=True)
    assert response.redirect_chain[-1][0] == "/accounts/login/"
    page = response.content.decode()
    assert "You are logged out." in page and 'class="msg-success"' in page
    assert client.get("/")["Location"].startswith("/accounts/login/")


# -- the staff's badge -----------------------------------------------------------------------------
def badge(page: str) -> str | None:
    found = re.search(r"<a [^>]*data-pending-requests>(.*?)</a>", page, re.S)
    return re.sub(r"<[^>]+>", "", found.group(1)) if found else None


def test_staff_see_a_badge_while_resource_requests_wait(site: Any) -> None:
    staff = client_for(UserFactory(username="stella", is_staff=True))
    alice = UserFactory(username="alice")
    assert badge(staff.get("/").content.decode()) is None  # nothing waits
    ask(2)
    page = staff.get("/").content.decode()
    assert badge(page) == "Requests 2 waiting for a decision"
    assert (
        'href="/admin/accounts/resourcerequest/?status__exact=pending" data-pending-requests'
        in page
    )
    # On every page of the portal, and never for users.
    assert (
        badge(staff.get("/containers/new/").content.decode()) == "Requests 2 waiting for a decision"
    )
    assert badge(client_for(alice).get("/").content.decode()) is None


def request_queries(queries: list[dict[str, Any]]) -> list[str]:
    return [q["sql"] for q in queries if "accounts_resourcerequest" in q["sql"]]


def test_the_badge_costs_staff_one_count_and_others_nothing(
    site: Any, django_assert_num_queries: Any
) -> None:
    stella = UserFactory(username="stella", is_staff=True)
    alice = UserFactory(username="alice")
    for i in range(3):
        services.container_create(owner=alice, hostname=f"a{i}", template=site.templates.get())
    ask()
    staff = client_for(stella)
    staff.get("/")  # warm: the session, the content types
    with CaptureQueriesContext(connection) as seen:
        staff.get("/")
    baseline = len(seen.captured_queries)
    counted = request_queries(seen.captured_queries)
    assert len(counted) == 1 and "COUNT(" in counted[0].upper()

    ask(5)  # more requests waiting: the same queries
    with django_assert_num_queries(baseline):
        assert "Requests 6" in badge(staff.get("/").content.decode())  # type: ignore[operator]

    # A user's page, and the admin (no base.html), never count.
    with CaptureQueriesContext(connection) as seen:
        client_for(alice).get("/")
    assert request_queries(seen.captured_queries) == []
    with CaptureQueriesContext(connection) as seen:
        assert staff.get("/admin/").status_code == 200
    assert request_queries(seen.captured_queries) == []
