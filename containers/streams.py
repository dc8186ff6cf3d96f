"""A job's progress as Server-Sent Events, and the limits that keep streams from
starving the web server (issue #10, item 6).

A stream holds a server thread for as long as it is open, so:
- each worker process serves at most EVENT_STREAM_MAX_PER_PROCESS streams at once and
  keeps its other threads for ordinary requests (more: `Busy`, 503);
- each user has at most EVENT_STREAM_MAX_PER_USER streams open across all processes,
  counted as slots in the shared cache (more: `TooMany`, 429);
- a stream ends after EVENT_STREAM_MAX_SECONDS; the browser's EventSource reconnects
  with Last-Event-ID and carries on where it left off.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core.cache import cache

from portal.errors import Busy, ErrorCode, TooMany

from .api.serializers import JobLogEntrySerializer, JobSerializer
from .models import Job, JobLogEntry

# Seconds a refused client is told to wait (Retry-After).
RETRY_AFTER_USER = 5
RETRY_AFTER_BUSY = 2
# A comment line this often: it keeps proxies from timing the stream out, and writing
# it is how the server notices a client that went away (and frees its slot).
KEEPALIVE_SECONDS = 5.0
# A slot outlives its stream by this much at most if the process dies holding it.
SLOT_GRACE_SECONDS = 60

_local_lock = threading.Lock()
_local_open = 0


class StreamLease:
    """One stream's place in its process and among its user's slots; given back once."""

    def __init__(self, slot_key: str, nonce: str) -> None:
        self.slot_key, self.nonce = slot_key, nonce
        self._released = False
        self._lock = threading.Lock()

    def release(self) -> None:
        global _local_open
        with self._lock:
            if self._released:
                return
            self._released = True
        with _local_lock:
            _local_open -= 1
        # Only our own slot: after an expiry another stream may hold the key.
        if cache.get(self.slot_key) == self.nonce:
            cache.delete(self.slot_key)


def stream_acquire(*, user_id: int) -> StreamLease:
    """A place for one more stream of this user in this process, or TooMany / Busy."""
    global _local_open
    per_user = max(1, int(settings.EVENT_STREAM_MAX_PER_USER))
    nonce = secrets.token_hex(8)
    ttl = int(settings.EVENT_STREAM_MAX_SECONDS) + SLOT_GRACE_SECONDS
    slot_key = next(
        (
            key
            for key in (f"portal:event-stream:{user_id}:{n}" for n in range(per_user))
            if cache.add(key, nonce, timeout=ttl)
        ),
        "",
    )
    if not slot_key:
        raise TooMany(
            f"you have {per_user} event streams open already; close one or wait",
            code=ErrorCode.TOO_MANY_STREAMS,
            retry_after=RETRY_AFTER_USER,
        )
    with _local_lock:
        if _local_open < max(1, int(settings.EVENT_STREAM_MAX_PER_PROCESS)):
            _local_open += 1
            return StreamLease(slot_key, nonce)
    cache.delete(slot_key)
    raise Busy(
        "the server is serving as many event streams as it may; try again shortly",
        code=ErrorCode.STREAMS_BUSY,
        retry_after=RETRY_AFTER_BUSY,
    )


class LeasedStream:
    """A response body that gives its lease back when it ends or is closed, even if it
    never started (Django's StreamingHttpResponse calls `close` in every case)."""

    def __init__(self, events: Iterator[str], lease: StreamLease) -> None:
        self.events, self.lease = events, lease

    def __iter__(self) -> Iterator[str]:
        try:
            yield from self.events
        finally:
            self.lease.release()

    def close(self) -> None:
        close = getattr(self.events, "close", None)
        if close is not None:
            close()
        self.lease.release()


def _sse(event: str, data: Any, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, default=str)}\n\n"


def job_event_stream(
    job_id: Any, *, after: int, max_seconds: float | None = None, poll: float = 0.25
) -> Iterator[str]:
    """Server-Sent Events for one job: `log` events (with ids, so Last-Event-ID resumes),
    `job` events when its state changes, and `end` once it is final and fully sent.
    Past its maximum life it just ends: the client reconnects and resumes."""
    life = settings.EVENT_STREAM_MAX_SECONDS if max_seconds is None else max_seconds
    deadline = time.monotonic() + life
    last_state: Any = None
    last_beat = time.monotonic()
    yield "retry: 1000\n\n"
    while True:
        for entry in JobLogEntry.objects.filter(job_id=job_id, id__gt=after).order_by("id")[:500]:
            after = entry.id
            yield _sse("log", JobLogEntrySerializer(entry).data, entry.id)
        job = Job.objects.select_related("container", "actor").get(pk=job_id)
        state = (job.status, job.progress, json.dumps(job.steps, default=str))
        if state != last_state:
            last_state = state
            yield _sse("job", JobSerializer(job).data)
        if job.is_final and not JobLogEntry.objects.filter(job_id=job_id, id__gt=after).exists():
            yield _sse("end", {"status": job.status})
            return
        if time.monotonic() > deadline:
            return
        if time.monotonic() - last_beat > KEEPALIVE_SECONDS:
            last_beat = time.monotonic()
            yield ": keep-alive\n\n"
        time.sleep(poll)
