"""The REST API's contract for containers, jobs and templates (session auth here;
token auth in tests/unit/accounts). Every response is validated against the OpenAPI document."""

from __future__ import annotations

import pytest
from django.test import Client

from containers import services
from containers.models import Container, Job
from networking.models import Node
from tests.api_contract import check
from tests.factories import UserFactory, make_site

pytestmark = pytest.mark.django_db


@pytest.fixture
def site():
    return make_site(None)


def client_for(username: str | None, *, staff: bool = False) -> Client:
    client = Client()
    if username:
        user = UserFactory(username=username, is_staff=staff)
        client.force_login(user)
    return client


def create(client: Client, headers: dict[str, str] | None = None, **body) -> object:
    return client.post(
        "/api/v1/containers/",
        {"hostname": "web", "template": "debian-12", **body},
        content_type="application/json",
        headers=headers,
    )


def test_anonymous_gets_401_in_the_error_shape(site) -> None:
    response = check(Client().get("/api/v1/containers/"))
    assert response.status_code in (401, 403)
    assert set(response.json()) == {"code", "message", "detail"}


def test_create_answers_202_with_the_job_and_a_location(site) -> None:
    client = client_for("alice")
    response = check(create(client, cores=2))
    assert response.status_code == 202
    body = response.json()
    assert body["container"]["hostname"] == "web" and body["container"]["cores"] == 2
    assert body["job"]["kind"] == "create" and body["job"]["status"] == "queued"
    assert response["Location"] == f"/api/v1/jobs/{body['job']['id']}/"
    job = check(client.get(response["Location"])).json()
    assert job["id"] == body["job"]["id"] and [s["name"] for s in job["steps"]][:3] == [
        "create",
        "start",
        "inspect",
    ]


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"hostname": "Bad_Name"}, 400, "invalid_hostname", "hostname"),
        ({"template": "nope"}, 400, "invalid", "template"),
        ({"cores": 64}, 400, "invalid_resources", "cores"),
        ({"memory_mib": "lots"}, 400, "invalid", "memory_mib"),
        ({"ssh_public_keys": "ssh-rsa nonsense"}, 400, "invalid", "ssh_public_keys"),
    ],
)
def test_bad_input_gets_the_documented_error(site, body, status, code, field) -> None:
    response = check(create(client_for("alice"), **body))
    assert response.status_code == status
    assert response.json()["code"] == code
    assert field in response.json()["detail"]
    assert Container.objects.count() == 0


def test_hostname_taken_is_409(site) -> None:
    create(client_for("alice"))
    response = check(create(client_for("bob")))
    assert response.status_code == 409 and response.json()["code"] == "hostname_taken"


def test_idempotency_key_prevents_a_second_container(site) -> None:
    client = client_for("alice")
    first = create(client, headers={"Idempotency-Key": "deploy-1"})
    again = check(create(client, headers={"Idempotency-Key": "deploy-1"}))
    assert first.status_code == again.status_code == 202
    assert first.json()["job"]["id"] == again.json()["job"]["id"]
    assert Container.objects.count() == 1 and Job.objects.count() == 1
    other = check(create(client, hostname="other", headers={"Idempotency-Key": "deploy-1"}))
    assert other.status_code == 409 and other.json()["code"] == "idempotency_key_reused"


def test_others_containers_are_404_never_403(site) -> None:
    job = services.container_create(
        owner=UserFactory(username="bob"), hostname="bobs", template=site.templates.get()
    )
    alice = client_for("alice")
    cid = job.container.pk
    for method, path in [
        ("get", f"/api/v1/containers/{cid}/"),
        ("post", f"/api/v1/containers/{cid}/start/"),
        ("post", f"/api/v1/containers/{cid}/stop/"),
        ("delete", f"/api/v1/containers/{cid}/"),
        ("patch", f"/api/v1/containers/{cid}/"),
        ("get", f"/api/v1/jobs/{job.pk}/"),
        ("get", f"/api/v1/jobs/{job.pk}/log/"),
    ]:
        response = getattr(alice, method)(path, content_type="application/json")
        assert response.status_code == 404, (method, path, response.status_code)
        assert response.json()["code"] == "not_found"
    assert check(alice.get("/api/v1/containers/")).json()["count"] == 0
    staff = client_for("root", staff=True)
    assert check(staff.get(f"/api/v1/containers/{cid}/")).status_code == 200


def test_actions_on_a_pending_container_are_invalid_state(site) -> None:
    client = client_for("alice")
    cid = create(client).json()["container"]["id"]
    response = check(client.post(f"/api/v1/containers/{cid}/start/"))
    assert response.status_code == 409 and response.json()["code"] == "invalid_state"


def test_delete_while_a_job_runs_is_a_conflict(site) -> None:
    client = client_for("alice")
    cid = create(client).json()["container"]["id"]
    response = check(client.delete(f"/api/v1/containers/{cid}/"))
    assert response.status_code == 409 and response.json()["code"] == "job_in_progress"


def test_job_log_resumes_after_an_entry(site) -> None:
    client = client_for("alice")
    job_id = create(client).json()["job"]["id"]
    job = Job.objects.get(pk=job_id)
    entries = [job.log_entries.create(message=f"line {i}") for i in range(3)]
    log = check(client.get(f"/api/v1/jobs/{job_id}/log/", {"after": entries[0].id})).json()
    assert [e["message"] for e in log] == ["line 1", "line 2"]


def test_list_filters_and_query_count_is_flat(site, django_assert_max_num_queries) -> None:
    client = client_for("alice")
    for i in range(3):
        create(client, hostname=f"w{i}")
    with django_assert_max_num_queries(12) as few:
        check(client.get("/api/v1/containers/", {"page_size": 50}))
    baseline = len(few.captured_queries)
    assert baseline > 0
    for i in range(3, 40):
        create(client, hostname=f"w{i}")
    with django_assert_max_num_queries(baseline):
        body = check(client.get("/api/v1/containers/", {"page_size": 50})).json()
    assert body["count"] == 40
    assert (
        check(client.get("/api/v1/containers/", {"hostname": "w3"})).json()["count"] == 11
    )  # w3, w30-w39


def test_templates_sites_and_nodes(site) -> None:
    alice = client_for("alice")
    assert [t["name"] for t in check(alice.get("/api/v1/templates/")).json()["results"]] == [
        "debian-12"
    ]
    assert check(alice.get("/api/v1/sites/")).json()["results"][0]["domain"] == "apps.example.test"
    assert check(alice.get("/api/v1/nodes/")).status_code == 403
    nodes = check(client_for("root", staff=True).get("/api/v1/nodes/"))
    assert nodes.status_code == 200 and "secret" not in nodes.content.decode()
    assert "token" not in nodes.content.decode()
    Node.objects.filter(name="pve1").update(load_1=3.74, load_5=3.37, load_15=3.0, cpu_load=0.2)
    shown = {
        n["name"]: n
        for n in check(client_for("root", staff=True).get("/api/v1/nodes/")).json()["results"]
    }
    assert [shown["pve1"][k] for k in ("cpu_load", "load_1", "load_5", "load_15")] == [
        0.2,
        3.74,
        3.37,
        3.0,
    ]
    assert shown["pve2"]["load_1"] is None  # never read


def test_schema_and_offline_docs_are_served(site) -> None:
    client = client_for("alice")
    assert client.get("/api/v1/schema/").status_code == 200
    docs = client.get("/api/v1/docs/")
    assert (
        docs.status_code == 200
        and b"swagger" in docs.content.lower()
        and b"unpkg" not in docs.content
    )
    assert client.get("/api/v1/redoc/").status_code == 200
