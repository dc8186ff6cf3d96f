"""The shipped production server (deploy/gunicorn.conf.py) with job event streams open.

Issue #10, item 6: under gunicorn's default sync workers two event streams from a
read-only token held both workers and /healthz timed out. Here real gunicorn runs the
shipped configuration (2 workers of 6 threads, 3 of them for streams) against the test database; the tests
hold more streams than there are workers and check that the server still answers,
that a user's streams are capped (429, across worker processes), and that a stream
ends at its maximum life and resumes from Last-Event-ID.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from portal.procs import free_port
from tests.conftest import database_url, gunicorn
from tests.testenv import TEST_ENV

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]

WORKERS, THREADS, PER_USER, MAX_LIFE = 2, 6, 2, 8


@dataclass
class Streamer:
    username: str
    token: str  # a read-only API token, as in the report
    job_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Accept": "text/event-stream"}


@pytest.fixture
def web(cluster: Any, redis_url: str, run_dir: Path) -> Iterator[str]:
    """gunicorn with the shipped config; its cache (the stream slots) on the session's Redis."""
    import redis

    cache_url = redis_url.rsplit("/", 1)[0] + "/7"
    redis.Redis.from_url(cache_url).flushdb()
    port = free_port()
    env = {
        **os.environ,
        **TEST_ENV,
        "DATABASE_URL": database_url(),
        "CACHE_URL": cache_url,
        "ALLOWED_HOSTS": "127.0.0.1",
        "WEB_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": str(WORKERS),
        "WEB_THREADS": str(THREADS),
        "EVENT_STREAM_MAX_PER_USER": str(PER_USER),
        "EVENT_STREAM_MAX_SECONDS": str(MAX_LIFE),
        "WEB_GRACEFUL_TIMEOUT": "2",
    }
    with gunicorn(env, port=port, log_path=run_dir / f"gunicorn-{port}.log") as url:
        yield url


@pytest.fixture
def streamers(cluster: Any, monkeypatch: pytest.MonkeyPatch) -> list[Streamer]:
    """Three users, each with a read-only token and a job that never ends (no worker runs it)."""
    from auth.tokens import token_create
    from containers import services
    from tests.factories import UserFactory

    # No Celery message at all: a test that runs before the worker fixture would otherwise
    # bind the app's producer to the default broker for the rest of the session.
    monkeypatch.setattr("containers.tasks.enqueue_job", lambda job_id: None)
    monkeypatch.setattr("networking.services.enqueue_apply", lambda *a, **k: None)
    out = []
    for n in range(3):
        user = UserFactory(username=f"streamer{n}")
        job = services.container_create(
            owner=user, hostname=f"stream{n}", template=cluster.templates.get()
        )
        _, token = token_create(user=user, name="watch", scope="read", expires_in_days=7)
        out.append(Streamer(user.username, token, str(job.pk)))
    return out


def open_stream(base: str, who: Streamer, *, last_event_id: int | None = None) -> Any:
    headers = who.headers
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    return requests.get(
        f"{base}/api/v1/jobs/{who.job_id}/events/", headers=headers, stream=True, timeout=(5, 30)
    )


def open_held(base: str, who: Streamer, **kwargs: Any) -> Any:
    """A stream that the server is now serving. A worker process whose stream share is
    full answers 503 (Retry-After): ask again, as the browser does, and another takes it."""
    for _ in range(50):
        response = open_stream(base, who, **kwargs)
        if response.status_code != 503:
            return response
        response.close()
        time.sleep(0.1)
    raise AssertionError("every worker stayed busy")


def events(response: Any) -> Iterator[tuple[str, str | None]]:
    """(event, id) pairs as they arrive; ends when the server ends the stream."""
    current: dict[str, str] = {}
    for raw in response.iter_lines():
        line = raw.decode()
        if not line:
            if "event" in current:
                yield current["event"], current.get("id")
            current = {}
        elif not line.startswith((":", "retry")):
            key, _, value = line.partition(": ")
            current[key] = value


def test_more_streams_than_workers_leave_the_server_answering(
    web: str, streamers: list[Streamer]
) -> None:
    held: list[tuple[Any, Iterator[bytes]]] = []  # keep the line iterators: dropping one
    opened = time.monotonic()  # closes its connection
    try:
        for who in streamers[:2]:
            for _ in range(PER_USER):
                response = open_held(web, who)
                assert response.status_code == 200, response.text
                lines = response.iter_lines()
                # The first line is written by the stream itself: a thread is serving it.
                assert next(lines) == b"retry: 1000"
                held.append((response, lines))
        assert len(held) > WORKERS

        # One more for a user at the cap is refused, whichever worker process it reaches.
        over = open_stream(web, streamers[0])
        assert over.status_code == 429
        assert over.headers["Content-Type"].startswith("application/json")
        body = over.json()
        assert set(body) == {"code", "message", "detail"}
        assert body["code"] == "too_many_streams"
        assert int(over.headers["Retry-After"]) > 0

        # The rest of the site answers while the streams are held.
        for _ in range(10):
            health = requests.get(f"{web}/healthz", timeout=10)
            assert health.status_code == 200 and health.json() == {"ok": True}
        listing = requests.get(
            f"{web}/api/v1/jobs/",
            headers={"Authorization": streamers[2].headers["Authorization"]},
            timeout=10,
        )
        assert listing.status_code == 200 and listing.json()["count"] == 1
        # A user below the cap still gets a stream.
        other = open_held(web, streamers[2])
        assert other.status_code == 200
        held.append((other, other.iter_lines()))
        # All the while every stream was open: none had reached its maximum life yet.
        assert time.monotonic() - opened < MAX_LIFE
        for _, lines in held:
            assert next(line for line in lines if line.startswith(b"event:")) == b"event: job"
    finally:
        for response, _ in held:
            response.close()


def test_a_stream_ends_at_its_maximum_life_and_resumes_from_last_event_id(
    web: str, streamers: list[Streamer]
) -> None:
    from containers.models import Job

    who = streamers[0]
    job = Job.objects.get(pk=who.job_id)
    first = job.log_entries.create(message="one")
    started = time.monotonic()
    response = open_held(web, who)
    assert response.status_code == 200
    seen = list(events(response))  # the server ends it; a broken chunked body would raise
    lasted = time.monotonic() - started
    assert ("log", str(first.id)) in seen and ("end", None) not in seen  # the job still runs
    assert MAX_LIFE - 1 < lasted < MAX_LIFE + 15

    second = job.log_entries.create(message="two")
    resumed = open_held(web, who, last_event_id=first.id)
    resumed_events = events(resumed)
    assert next(resumed_events) == ("log", str(second.id))

    # The ended stream gave its slot back, the resumed one holds the other: one more
    # stream fits the user's cap of two, a third does not.
    again = open_held(web, who)
    assert again.status_code == 200
    assert open_stream(web, who).status_code == 429
    again.close()
    resumed.close()
