"""The limits on job event streams, in process (the live server test is tests/functional/test_web_server.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache
from django.core.signals import request_finished
from django.db import close_old_connections
from django.test import Client

from containers import services
from containers.models import Job
from tests.api_contract import check
from tests.factories import UserFactory, make_site

pytestmark = pytest.mark.django_db


OPEN: list[Any] = []


@pytest.fixture
def jobs(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Job]]:
    monkeypatch.setattr("containers.tasks.enqueue_job", lambda job_id: None)
    monkeypatch.setattr("networking.services.enqueue_apply", lambda *a, **k: None)
    settings.EVENT_STREAM_MAX_PER_USER = 2
    settings.EVENT_STREAM_MAX_PER_PROCESS = 3
    cache.clear()
    site = make_site(None)
    out = {}
    for name in ("ann", "bob"):
        owner = UserFactory(username=name)
        out[name] = services.container_create(
            owner=owner, hostname=f"{name}-ct", template=site.templates.get()
        )
    yield out
    while OPEN:  # the process's count of streams is shared by every test
        leave(OPEN.pop())


def stream(user: Any, job: Job) -> Any:
    client = Client()
    client.force_login(user)
    response = client.get(f"/api/v1/jobs/{job.pk}/events/", HTTP_ACCEPT="text/event-stream")
    OPEN.append(response)
    return response


def leave(response: Any) -> None:
    """What the WSGI server does when the client goes away: close the response (without
    closing the test's database connection, as Django's test client does)."""
    request_finished.disconnect(close_old_connections)
    try:
        response.close()
    finally:
        request_finished.connect(close_old_connections)


def test_a_user_past_the_stream_cap_gets_429_until_a_stream_closes(jobs: dict[str, Job]) -> None:
    ann = jobs["ann"]
    first, second = stream(ann.actor, ann), stream(ann.actor, ann)
    assert first.status_code == second.status_code == 200
    refused = check(stream(ann.actor, ann))
    assert refused.status_code == 429
    assert refused["Content-Type"] == "application/json"
    assert refused.json()["code"] == "too_many_streams"
    assert int(refused["Retry-After"]) > 0
    # Another user is not affected.
    assert stream(jobs["bob"].actor, jobs["bob"]).status_code == 200
    # A stream the client leaves (closed before it even started) gives its slot back.
    leave(first)
    assert stream(ann.actor, ann).status_code == 200


def test_a_process_keeps_threads_for_other_requests(settings: Any, jobs: dict[str, Job]) -> None:
    settings.EVENT_STREAM_MAX_PER_PROCESS = 1
    held = stream(jobs["ann"].actor, jobs["ann"])
    assert held.status_code == 200
    busy = check(stream(jobs["bob"].actor, jobs["bob"]))
    assert busy.status_code == 503 and busy.json()["code"] == "streams_busy"
    assert int(busy["Retry-After"]) > 0
    # Bob's refused stream kept no slot of his: with room again, he gets his full share.
    settings.EVENT_STREAM_MAX_PER_PROCESS = 3
    assert [stream(jobs["bob"].actor, jobs["bob"]).status_code for _ in range(2)] == [200, 200]


def test_a_stream_ends_after_its_maximum_life(settings: Any, jobs: dict[str, Job]) -> None:
    settings.EVENT_STREAM_MAX_SECONDS = 0.5
    job = jobs["ann"]
    job.log_entries.create(message="one")
    started = time.monotonic()
    body = b"".join(stream(job.actor, job).streaming_content).decode()
    assert time.monotonic() - started < 5
    assert "event: log" in body and "event: end" not in body  # not final: the client resumes
    # Ended by itself, the stream gave its slot back.
    assert [stream(job.actor, job).status_code for _ in range(2)] == [200, 200]


def test_errors_on_the_stream_endpoint_are_json(jobs: dict[str, Job]) -> None:
    other = jobs["bob"]
    response = check(stream(jobs["ann"].actor, other))
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert set(response.json()) == {"code", "message", "detail"}
