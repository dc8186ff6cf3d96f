"""The container page's live job in Chromium when the server ends streams early (their
maximum life) or refuses them (the per-user cap): the page resumes and misses nothing."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.core.cache import cache
from playwright.sync_api import expect

from tests.functional.browser.conftest import log_in, make_user

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.usefixtures("transactional_db", "local_login"),
]


def test_the_page_resumes_after_a_refused_and_an_ended_stream(
    page: Any, cluster: Any, settings: Any, monkeypatch: Any
) -> None:
    from containers import services, streams
    from containers.models import Job, JobStatus

    monkeypatch.setattr("containers.tasks.enqueue_job", lambda job_id: None)
    monkeypatch.setattr("networking.services.enqueue_apply", lambda *a, **k: None)
    settings.EVENT_STREAM_MAX_SECONDS = 1.0
    settings.EVENT_STREAM_MAX_PER_USER = 1
    cache.clear()
    alice = make_user("alice")
    job = services.container_create(owner=alice, hostname="web", template=cluster.templates.get())
    log_in(page, "alice")

    # Alice's one stream is taken elsewhere: the page's stream is refused (429)...
    refused: list[int] = []
    page.on(
        "response",
        lambda r: refused.append(r.status) if "/events/" in r.url and r.status == 429 else None,
    )
    held = streams.stream_acquire(user_id=alice.pk)
    page.goto(f"/containers/{job.container.pk}/")
    deadline = time.monotonic() + 10
    while not refused and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert refused == [429]
    # ...and once it is free, the page tries again by itself.
    held.release()
    job.log_entries.create(message="line 0")
    expect(page.locator(".log")).to_contain_text("line 0", timeout=15_000)

    # Streams now end every second; entries written across several of them all arrive,
    # once each and in order.
    for n in range(1, 5):
        job.log_entries.create(message=f"line {n}")
        time.sleep(0.6)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED, progress=100)
    box = page.locator("[data-job-events]")
    expect(box).to_have_attribute("data-job-final", "succeeded", timeout=15_000)
    lines = [t.split(" ", 2)[-1].strip() for t in box.locator(".log div").all_inner_texts()]
    assert [x for x in lines if x.startswith("line ")] == [f"line {n}" for n in range(5)]
