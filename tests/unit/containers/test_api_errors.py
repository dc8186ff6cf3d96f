"""Hostile input at the API's edge: malformed ids, out-of-range numbers, bad filters and
page sizes. Each answers a 4xx with the JSON error body, documented in the OpenAPI
document the portal serves (every response here goes through `check`), never a 500."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from auth.models import QUOTA_VALUE_MAX, QuotaOverride, ResourceRequest
from containers import resource_requests, services
from portal.api.pagination import MAX_PAGE_SIZE, MAX_WALK_PAGE_SIZE
from tests.api_contract import check
from tests.factories import UserFactory, make_site

pytestmark = pytest.mark.django_db

HUGE = 2**63  # one past PostgreSQL's bigint
BEYOND_INT = QUOTA_VALUE_MAX + 1  # one past PostgreSQL's integer (a PositiveIntegerField)


@pytest.fixture
def world() -> dict[str, Any]:
    site = make_site(None)
    owner = UserFactory(username="owner")
    UserFactory(username="staff", is_staff=True)
    job = services.container_create(owner=owner, hostname="app", template=site.templates.get())
    return {"site": site, "owner": owner, "container": job.container, "job": job}


def login(username: str) -> Client:
    client = Client()
    client.force_login(User.objects.get(username=username))
    return client


def assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert set(body) == {"code", "message", "detail"}, body
    if code is not None:
        assert body["code"] == code, body
    return body


# -- malformed and unknown ids: JSON 404s, as the document promises ------------------------
@pytest.mark.parametrize("who", ["owner", "staff"])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/resource-requests/abc/"),
        ("post", "/api/v1/resource-requests/abc/approve/"),
        ("post", "/api/v1/resource-requests/abc/deny/"),
        ("get", "/api/v1/resource-requests/99999999999999999999/"),
        ("get", "/api/v1/containers/abc/"),
        ("post", "/api/v1/containers/abc/start/"),
        ("get", "/api/v1/containers/99999999999999999999/"),
        ("get", "/api/v1/containers/1e3/routes/"),
        ("get", "/api/v1/containers/1.5/"),
        ("delete", "/api/v1/containers/1.5/routes/1/"),
        ("get", "/api/v1/jobs/not-a-uuid/"),
        ("get", "/api/v1/jobs/not-a-uuid/log/"),
        ("get", "/api/v1/jobs/12345678-1234-1234-1234-1234567890zz/"),
        ("get", "/api/v1/tokens/abc/"),
        ("delete", "/api/v1/tokens/abc/"),
        ("get", "/api/v1/templates/abc/"),
        ("get", "/api/v1/sites/abc/"),
    ],
)
def test_malformed_path_ids_are_json_404s(world, who, method, path) -> None:
    response = check(getattr(login(who), method)(path, {}, content_type="application/json"))
    assert_error(response, 404, "not_found")


@pytest.mark.parametrize(("who", "status"), [("owner", 403), ("staff", 404)])
def test_a_malformed_audit_id_is_json(world, who, status) -> None:
    # Staff-only: others hear 403 before any lookup, as for every audit id.
    response = check(login(who).get("/api/v1/audit/abc/"))
    assert_error(response, status)


def test_unknown_api_paths_are_json_and_the_gui_keeps_html(world) -> None:
    client = login("owner")
    for path in ("/api/v1/nothing-here/", "/api/v2/containers/", "/api/"):
        assert_error(client.get(path), 404, "not_found")
    anonymous = Client().get("/api/v1/nothing-here/")
    assert_error(anonymous, 404, "not_found")
    page = client.get("/no-such-page/")
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")


def test_an_unknown_method_on_a_malformed_id_is_json(world) -> None:
    client = login("owner")
    response = client.put("/api/v1/containers/abc/", {}, content_type="application/json")
    assert_error(response, 405, "method_not_allowed")
    response = client.put("/api/v1/containers/1.5/", {}, content_type="application/json")
    assert_error(response, 404, "not_found")


# -- numbers beyond the columns ------------------------------------------------------------
@pytest.mark.parametrize("value", [str(HUGE), "99999999999999999999", "1.5", "-1", "abc"])
def test_job_container_filter_out_of_range_is_a_documented_400(world, value) -> None:
    response = check(login("owner").get("/api/v1/jobs/", {"container": value}))
    body = assert_error(response, 400, "invalid")
    assert "container" in body["detail"]


def test_job_container_filter_in_range_works(world) -> None:
    client = login("owner")
    found = check(client.get("/api/v1/jobs/", {"container": world["container"].pk}))
    assert [j["id"] for j in found.json()["results"]] == [str(world["job"].pk)]
    none = check(client.get("/api/v1/jobs/", {"container": world["container"].pk + 1000}))
    assert none.json()["results"] == []


@pytest.mark.parametrize("value", [HUGE, BEYOND_INT])
def test_a_quota_request_beyond_the_column_is_refused(world, value) -> None:
    response = check(
        login("owner").post(
            "/api/v1/resource-requests/",
            {"kind": "quota", "reason": "a course needs more room", "limits": {"max_cores": value}},
            content_type="application/json",
        )
    )
    body = assert_error(response, 400, "invalid")
    assert "limits" in body["detail"]
    assert not ResourceRequest.objects.exists()


def test_the_largest_quota_value_is_accepted_and_approved(world) -> None:
    owner = login("owner")
    response = check(
        owner.post(
            "/api/v1/resource-requests/",
            {
                "kind": "quota",
                "reason": "a course needs more room",
                "limits": {"max_cores": QUOTA_VALUE_MAX},
            },
            content_type="application/json",
        )
    )
    assert response.status_code == 201, response.content
    rid = response.json()["id"]
    approved = check(
        login("staff").post(
            f"/api/v1/resource-requests/{rid}/approve/", {}, content_type="application/json"
        )
    )
    assert approved.status_code == 200, approved.content
    assert QuotaOverride.objects.get().max_cores == QUOTA_VALUE_MAX


@pytest.mark.parametrize("value", [HUGE, BEYOND_INT])
def test_approving_a_stored_out_of_range_request_is_a_400(world, value) -> None:
    """A row written before the edge checked (or by hand) cannot make approve 500."""
    row = ResourceRequest.objects.create(
        user=world["owner"], kind="quota", reason="old row from before", limits={"max_cores": value}
    )
    response = check(
        login("staff").post(
            f"/api/v1/resource-requests/{row.pk}/approve/", {}, content_type="application/json"
        )
    )
    assert_error(response, 400, "invalid")
    row.refresh_from_db()
    assert row.status == "pending" and not QuotaOverride.objects.exists()


def test_the_service_refuses_out_of_range_limits(world) -> None:
    from portal.errors import ValidationFailed

    with pytest.raises(ValidationFailed):
        resource_requests.resource_request_create(
            user=world["owner"],
            kind="quota",
            reason="a course needs more room",
            limits={"max_memory_mib": BEYOND_INT},
        )


@pytest.mark.parametrize("field", ["cores", "memory_mib", "swap_mib", "disk_gib"])
@pytest.mark.parametrize("value", [HUGE, BEYOND_INT])
def test_sizes_beyond_the_column_are_refused_everywhere(world, field, value) -> None:
    client = login("owner")
    cid = world["container"].pk
    cases = [
        ("post", "/api/v1/containers/", {"hostname": "big", "template": "debian-12", field: value}),
        ("patch", f"/api/v1/containers/{cid}/", {field: value}),
        (
            "post",
            "/api/v1/resource-requests/",
            {"kind": "resize", "reason": "it needs more room", "container": cid, field: value},
        ),
    ]
    for method, path, body in cases:
        response = check(getattr(client, method)(path, body, content_type="application/json"))
        result = assert_error(response, 400, "invalid")
        assert field in result["detail"], (path, result)


@pytest.mark.parametrize(("value", "status"), [(HUGE, 400), (-1, 400), (0, 400), (BEYOND_INT, 404)])
def test_a_resize_request_for_an_impossible_container_id_is_a_4xx(world, value, status) -> None:
    response = check(
        login("owner").post(
            "/api/v1/resource-requests/",
            {"kind": "resize", "reason": "it needs more room", "container": value, "cores": 2},
            content_type="application/json",
        )
    )
    assert_error(response, status)


@pytest.mark.parametrize("value", [HUGE, 65536, 0])
def test_ports_beyond_their_range_are_refused(world, value) -> None:
    client = login("owner")
    cid = world["container"].pk
    for path, body in (
        (f"/api/v1/containers/{cid}/routes/", {"name": "api", "backend_port": value}),
        (f"/api/v1/containers/{cid}/ports/", {"name": "web", "container_port": value}),
    ):
        response = check(client.post(path, body, content_type="application/json"))
        assert_error(response, 400, "invalid")


@pytest.mark.parametrize("after", ["abc", "1.5", "-1", str(HUGE), "9" * 5000, str(HUGE - 1)])
def test_job_log_after_is_checked_and_documented(world, after) -> None:
    response = check(login("owner").get(f"/api/v1/jobs/{world['job'].pk}/log/", {"after": after}))
    if after == str(HUGE - 1):
        assert response.status_code == 200 and response.json() == []
    else:
        assert_error(response, 400, "invalid")


# -- list filters and pages ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("who", "path", "params"),
    [
        ("owner", "/api/v1/containers/", {"status": "bogus"}),
        ("owner", "/api/v1/jobs/", {"status": "bogus"}),
        ("owner", "/api/v1/jobs/", {"kind": "bogus"}),
        ("owner", "/api/v1/resource-requests/", {"status": "bogus"}),
        ("owner", "/api/v1/resource-requests/", {"kind": "bogus"}),
        ("staff", "/api/v1/nodes/", {"state": "bogus"}),
    ],
)
def test_bad_list_filters_are_documented_400s(world, who, path, params) -> None:
    response = check(login(who).get(path, params))
    assert_error(response, 400, "invalid")


LISTS = (
    "/api/v1/containers/",
    "/api/v1/jobs/",
    "/api/v1/templates/",
    "/api/v1/sites/",
    "/api/v1/tokens/",
    "/api/v1/resource-requests/",
    "/api/v1/audit/",
    "/api/v1/nodes/",
)


# The container list's pages go to 1,000 (a cursor walk of many); the others' to 200.
LARGEST = {"/api/v1/containers/": MAX_WALK_PAGE_SIZE}


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize("page_size", ["abc", "1.5", "0", "-3", "past", str(HUGE)])
def test_page_size_takes_only_whole_numbers_in_range(world, path, page_size) -> None:
    if page_size == "past":
        page_size = str(LARGEST.get(path, MAX_PAGE_SIZE) + 1)
    response = check(login("staff").get(path, {"page_size": page_size}))
    body = assert_error(response, 400, "invalid")
    assert "page_size" in body["detail"]


@pytest.mark.parametrize("path", LISTS)
def test_page_size_in_range_pages(world, path) -> None:
    response = check(login("staff").get(path, {"page_size": "1"}))
    assert response.status_code == 200
    assert len(response.json()["results"]) <= 1
    largest = LARGEST.get(path, MAX_PAGE_SIZE)
    assert check(login("staff").get(path, {"page_size": str(largest)})).status_code == 200


@pytest.mark.parametrize("page", ["abc", "0", str(HUGE), "99999999999999999999"])
def test_bad_page_numbers_are_documented_404s(world, page) -> None:
    response = check(login("owner").get("/api/v1/containers/", {"page": page}))
    assert_error(response, 404, "not_found")


def test_the_schema_documents_page_size_bounds_and_list_400s() -> None:
    from tests.api_contract import openapi

    spec = openapi().spec
    for path in LISTS:
        op = spec / "paths" / path / "get"
        params = {p["name"]: p for p in (op / "parameters")}
        assert params["page_size"]["schema"]["minimum"] == 1
        assert params["page_size"]["schema"]["maximum"] == LARGEST.get(path, MAX_PAGE_SIZE)
        assert "400" in (op / "responses"), path


# -- the GUI's JSON endpoint ---------------------------------------------------------------
@pytest.mark.parametrize("template", ["xyz", "1.5", "-1", str(HUGE), "9" * 5000])
def test_hostname_check_with_a_bad_template_is_a_400(world, template) -> None:
    response = login("owner").get(
        "/containers/check-hostname", {"hostname": "fresh", "template": template}
    )
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["ok"] is False and body["code"] == "invalid"
    assert "template" in body["detail"] and body["message"]


def test_hostname_check_with_a_good_or_unknown_template(world) -> None:
    client = login("owner")
    template = world["site"].templates.get()
    taken = client.get("/containers/check-hostname", {"hostname": "app", "template": template.pk})
    assert taken.status_code == 200 and taken.json()["ok"] is False
    unknown = client.get(
        "/containers/check-hostname", {"hostname": "x1", "template": str(HUGE - 1)}
    )
    assert unknown.status_code == 200 and unknown.json()["ok"] is True


def test_a_collaborator_name_with_a_nul_is_a_400(world) -> None:
    # PostgreSQL refuses NUL in text: it must never reach a query.
    cid = world["container"].pk
    for name in ("a%00b", "x" * 151):
        response = check(login("owner").delete(f"/api/v1/containers/{cid}/collaborators/{name}/"))
        body = assert_error(response, 400, "invalid")
        assert "username" in body["detail"]


# -- errors Django answers itself ----------------------------------------------------------
def test_a_body_over_the_limit_is_a_json_400_under_the_api(world, settings) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    big = '{"hostname": "' + "x" * 2000 + '"}'
    client = login("owner")
    response = client.post("/api/v1/containers/", big, content_type="application/json")
    assert_error(response, 400, "bad_request")
    page = client.post("/containers/new/", {"hostname": "x" * 2000})
    assert page.status_code == 400 and page["Content-Type"].startswith("text/html")


def test_a_crash_under_the_api_is_a_json_500() -> None:
    from django.test import RequestFactory

    from portal.api.exceptions import server_error

    response = server_error(RequestFactory().get("/api/v1/containers/"))
    assert response.status_code == 500 and response["Content-Type"] == "application/json"
    assert json.loads(response.content)["code"] == "server_error"
    assert server_error(RequestFactory().get("/"))["Content-Type"].startswith("text/html")


@pytest.mark.parametrize(
    "body", [{"hostname": "renamed"}, {"hostname": "renamed", "cores": 2}, {"vmid": 7}]
)
def test_a_patch_changes_resources_only_and_never_the_hostname(world, body) -> None:
    """The hostname is read-only on every face: a PATCH naming it (or any field other than
    the resources) is refused as a whole, never half-applied."""
    container = world["container"]
    response = check(
        login("owner").patch(
            f"/api/v1/containers/{container.pk}/", body, content_type="application/json"
        )
    )
    result = assert_error(response, 400, "invalid")
    assert next(k for k in body if k != "cores") in json.dumps(result["detail"])
    container.refresh_from_db()
    assert container.hostname == "app" and container.cores == 1
    assert not container.jobs.filter(kind="resize").exists()
