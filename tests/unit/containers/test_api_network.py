"""Routes and ports through the API, the job event stream, and the schema staying clean."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

from auth.models import AuditEntry, Collaborator
from containers import services
from containers.models import Job
from tests.api_contract import check
from tests.factories import UserFactory, make_site

pytestmark = pytest.mark.django_db


@pytest.fixture
def app():
    site = make_site(None)
    owner = UserFactory(username="owner")
    job = services.container_create(owner=owner, hostname="app", template=site.templates.get())
    Collaborator.objects.create(
        container=job.container, user=UserFactory(username="collab"), added_by=owner
    )
    return job


def login(username: str) -> Client:
    from django.contrib.auth.models import User

    client = Client()
    client.force_login(User.objects.get(username=username))
    return client


def test_routes_add_change_remove(app) -> None:
    owner, cid = login("owner"), app.container.pk
    routes = check(owner.get(f"/api/v1/containers/{cid}/routes/")).json()
    # A new container's route is for signed-in users unless its owner says otherwise.
    assert [(r["subdomain"], r["access"]) for r in routes] == [("app", "users")]
    added = check(
        owner.post(
            f"/api/v1/containers/{cid}/routes/",
            {"name": "api", "backend_port": 8080, "access": "owner"},
            content_type="application/json",
        )
    )
    assert added.status_code == 201
    assert added.json()["url"] == "https://api-app.apps.example.test/"
    rid = added.json()["id"]
    changed = check(
        owner.patch(
            f"/api/v1/containers/{cid}/routes/{rid}/",
            {"access": "users"},
            content_type="application/json",
        )
    )
    assert changed.json()["access"] == "users"
    bad = check(
        owner.post(
            f"/api/v1/containers/{cid}/routes/",
            {"name": "we;b", "backend_port": 80},
            content_type="application/json",
        )
    )
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_service_name"
    default = routes[0]["id"]
    refused = check(owner.delete(f"/api/v1/containers/{cid}/routes/{default}/"))
    assert refused.status_code == 400 and refused.json()["code"] == "default_route"
    assert check(owner.delete(f"/api/v1/containers/{cid}/routes/{rid}/")).status_code == 204
    assert (
        AuditEntry.objects.filter(action__in=["route.add", "route.update", "route.delete"]).count()
        == 3
    )


def test_ports_publish_and_unpublish(app) -> None:
    owner, cid = login("owner"), app.container.pk
    ports = check(owner.get(f"/api/v1/containers/{cid}/ports/")).json()
    assert [(p["name"], p["container_port"]) for p in ports] == [("ssh", 22)]
    added = check(
        owner.post(
            f"/api/v1/containers/{cid}/ports/",
            {"name": "game", "container_port": 27015, "protocol": "udp"},
            content_type="application/json",
        )
    )
    assert added.status_code == 201 and added.json()["external_port"] >= 1024
    again = check(
        owner.post(
            f"/api/v1/containers/{cid}/ports/",
            {"name": "game2", "container_port": 27015, "protocol": "udp"},
            content_type="application/json",
        )
    )
    assert again.status_code == 409 and again.json()["code"] == "port_published"
    assert (
        check(owner.delete(f"/api/v1/containers/{cid}/ports/{ports[0]['id']}/")).status_code == 400
    )
    assert (
        check(owner.delete(f"/api/v1/containers/{cid}/ports/{added.json()['id']}/")).status_code
        == 204
    )


def test_collaborators_see_but_may_not_change_the_network_and_others_get_404(app) -> None:
    cid = app.container.pk
    collab = login("collab")
    assert check(collab.get(f"/api/v1/containers/{cid}/routes/")).status_code == 200
    denied = check(
        collab.post(
            f"/api/v1/containers/{cid}/ports/",
            {"name": "x", "container_port": 9000},
            content_type="application/json",
        )
    )
    assert denied.status_code == 403
    UserFactory(username="stranger")
    assert check(login("stranger").get(f"/api/v1/containers/{cid}/ports/")).status_code == 404


def read_events(response) -> list[tuple[str | None, str, str]]:
    events, current = [], {}
    for line in b"".join(response.streaming_content).decode().splitlines():
        if not line:
            if "event" in current:
                events.append((current.get("id"), current["event"], current.get("data", "")))
            current = {}
        elif not line.startswith((":", "retry")):
            key, _, value = line.partition(": ")
            current[key] = value
    return events


def test_job_events_stream_and_resume_from_last_event_id(app) -> None:
    job = app
    entries = [job.log_entries.create(message=f"line {i}") for i in range(3)]
    Job.objects.filter(pk=job.pk).update(status="succeeded", progress=100)
    owner = login("owner")
    response = owner.get(f"/api/v1/jobs/{job.pk}/events/", HTTP_ACCEPT="text/event-stream")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/event-stream")
    events = read_events(response)
    assert [e[1] for e in events] == ["log", "log", "log", "job", "end"]
    assert [e[0] for e in events[:3]] == [str(e.id) for e in entries]
    resumed = read_events(
        owner.get(
            f"/api/v1/jobs/{job.pk}/events/",
            HTTP_ACCEPT="text/event-stream",
            HTTP_LAST_EVENT_ID=str(entries[1].id),
        )
    )
    assert [(e[0], e[1]) for e in resumed] == [
        (str(entries[2].id), "log"),
        (None, "job"),
        (None, "end"),
    ]
    UserFactory(username="stranger")
    assert login("stranger").get(f"/api/v1/jobs/{job.pk}/events/").status_code == 404


def test_the_openapi_document_has_no_warnings() -> None:
    base = Path(__file__).resolve().parents[3]
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "spectacular",
            "--validate",
            "--fail-on-warn",
            "--file",
            "/dev/null",
        ],
        cwd=base,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PORTAL_DEMO": "1"},
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_routes_and_ports_of_a_deleting_container_are_refused(app) -> None:
    owner, c = login("owner"), app.container
    app.container.jobs.update(status="succeeded")  # built (no Proxmox here)
    services.container_delete(container=c, actor=c.owner)
    for path, body in (
        ("routes", {"name": "late", "backend_port": 8080}),
        ("ports", {"name": "late", "container_port": 9000}),
    ):
        r = check(
            owner.post(f"/api/v1/containers/{c.pk}/{path}/", body, content_type="application/json")
        )
        assert r.status_code == 409, r.content
        assert r.json()["code"] == "invalid_state"
        assert (
            r.json()["message"] == "cannot change the routes or ports of app while it is deleting"
        )
    default = c.routes.get()
    r = check(
        owner.patch(
            f"/api/v1/containers/{c.pk}/routes/{default.pk}/",
            {"access": "owner"},
            content_type="application/json",
        )
    )
    assert r.status_code == 409 and r.json()["code"] == "invalid_state"
    assert c.routes.count() == 1 and c.port_mappings.count() == 1
