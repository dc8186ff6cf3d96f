"""The context a job runs in: its job row, its container, a Proxmox client, its log and steps."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from containers.models import Container, Job, JobLogEntry, JobStatus, LogLevel, StepState
from containers.proxmox import ProxmoxClient


class RetryLater(Exception):
    """Raised to the Celery task: run this job again after `countdown` seconds."""

    def __init__(self, countdown: float) -> None:
        super().__init__(f"retry in {countdown:.1f}s")
        self.countdown = countdown


class LeaseLost(Exception):
    """Another worker took the job over (ours was presumed dead); stop touching it."""


def _iso(dt: Any) -> str:
    return dt.isoformat(timespec="milliseconds")


class JobContext:
    """What a handler needs: the job, its container, a Proxmox client, logging and steps.

    Step states and log lines are kept in memory and written together by `flush`, in
    one transaction: before every wait on Proxmox (so a watcher sees the step it is
    in), when a step records a task it started, on a heartbeat and at the end. A
    worker lost between flushes loses only the record of steps it finished since,
    and those are re-run: steps are idempotent.
    """

    def __init__(self, job: Job, worker: str) -> None:
        self.job = job
        self.attempt = job.attempts
        self.worker = worker
        assert job.container is not None
        self.container: Container = job.container
        self._last_beat = time.monotonic()
        self._pending: list[JobLogEntry] = []
        self._dirty = False
        self.current_step: dict[str, Any] | None = None
        self._said: set[str] = set()

    @property
    def client(self) -> ProxmoxClient:
        return ProxmoxClient.for_node(self.container.node)

    @property
    def node(self) -> str:
        return self.container.node.name

    def _mine(self) -> Any:
        return Job.objects.filter(pk=self.job.pk, status=JobStatus.RUNNING, attempts=self.attempt)

    def log(self, message: str, *, level: str = LogLevel.INFO) -> None:
        step = self.current_step["name"] if self.current_step else ""
        self._pending.append(
            JobLogEntry(
                job=self.job, level=level, step=step, message=message, created_at=timezone.now()
            )
        )

    def log_once(self, message: str, *, level: str = LogLevel.INFO) -> None:
        """Log `message` unless this run of the job already has (steps sharing one reason)."""
        if message not in self._said:
            self._said.add(message)
            self.log(message, level=level)

    @property
    def _unsaved(self) -> bool:
        return self._dirty or bool(self._pending)

    def _write_log(self) -> None:
        if self._pending:
            JobLogEntry.objects.bulk_create(self._pending)
            self._pending = []

    def _progress(self) -> int:
        steps = self.job.steps
        done = sum(1 for s in steps if s["state"] in (StepState.DONE, StepState.SKIPPED))
        return int(100 * done / len(steps)) if steps else 0

    def flush(self, **fields: Any) -> None:
        """Write the steps, progress and pending log lines (and `fields`) if this is still our job."""
        self.job.progress = fields.pop("progress", None) or self._progress()
        with transaction.atomic():
            if not self._mine().update(
                steps=self.job.steps,
                progress=self.job.progress,
                heartbeat_at=timezone.now(),
                **fields,
            ):
                raise LeaseLost(str(self.job.pk))
            self._write_log()
        self._dirty = False
        self._last_beat = time.monotonic()

    def save_steps(self) -> None:
        """Persist now: a step calls this once it has started a Proxmox task (its upid)."""
        self.flush()

    def heartbeat(self, *, force: bool = False) -> None:
        """Tell the others this job's worker is alive; raise LeaseLost if it was taken over."""
        if self._unsaved:
            self.flush()
            return
        now = time.monotonic()
        if not force and now - self._last_beat < min(2.0, settings.JOB_LEASE_SECONDS / 4):
            return
        self._last_beat = now
        if not self._mine().update(heartbeat_at=timezone.now()):
            raise LeaseLost(str(self.job.pk))

    def step(self, name: str) -> dict[str, Any]:
        for st in self.job.steps:
            if st["name"] == name:
                return st
        raise KeyError(name)

    def run_step(self, name: str, fn: Callable[[dict[str, Any]], str | None]) -> None:
        """Run one step unless an earlier attempt finished it; fn may return 'skipped'."""
        st = self.step(name)
        if st["state"] in (StepState.DONE, StepState.SKIPPED):
            return
        self.current_step = st
        resumed = st["state"] == StepState.RUNNING
        st.update(state=StepState.RUNNING, started_at=st.get("started_at") or _iso(timezone.now()))
        self._dirty = True
        self.log(f"{st['title']} (resumed)" if resumed else st["title"])
        outcome = fn(st)
        st.update(state=outcome or StepState.DONE, finished_at=_iso(timezone.now()))
        self._dirty = True
        self.current_step = None

    def run_task(
        self, st: dict[str, Any], start: Callable[[], str | None], *, resumed: str = ""
    ) -> str | None:
        """Follow the Proxmox task an earlier attempt started (its UPID is on the step), or
        call `start` for a new one, record its UPID, save, and wait for it.

        `start` may return None when there is nothing to wait for (e.g. "already running");
        then so does this. Returns the task's exit status otherwise."""
        if st.get("upid"):
            if resumed:
                self.log(resumed)
            return self.wait(st["upid"])
        upid = start()
        if not upid:
            return None
        st["upid"] = upid
        self.save_steps()
        return self.wait(upid)

    def wait(self, upid: str) -> str:
        """Wait for a Proxmox task, keeping the job's lease alive while it runs."""
        if self._unsaved:
            self.flush()
        status = self.client.wait_task(upid, on_poll=self.heartbeat)
        if status != "OK":
            self.log(f"Proxmox task finished with {status}", level=LogLevel.WARNING)
        return status
