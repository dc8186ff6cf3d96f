"""Following a job to its end: its Server-Sent Events (/jobs/<id>/events/), resumed with
Last-Event-ID after a dropped connection, or by polling when the server has no stream to
spare (429/503). What is seen goes to a display: rich on a terminal, plain lines elsewhere.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from .errors import CliError, Exit
from .output import say
from .sse import events

if TYPE_CHECKING:
    import httpx

    from .client import Api

FINAL = ("succeeded", "failed", "cancelled")
POLL_SECONDS = 0.5
# Connections in a row that failed before giving up (with a growing pause between).
MAX_FAILED_CONNECTS = 8
ENDED, DROPPED, UNREACHABLE, REFUSED = "ended", "dropped", "unreachable", "refused"


class Display(Protocol):
    def job(self, job: dict[str, Any]) -> None: ...
    def log(self, entry: dict[str, Any]) -> None: ...
    def close(self) -> None: ...


class Follower:
    """Feeds one job's log entries (each once, in order) and states to a display."""

    def __init__(
        self, api: Api, job: dict[str, Any], display: Display, *, deadline: float | None = None
    ) -> None:
        self.api, self.job, self.display = api, job, display
        self.after = 0  # the last log entry id shown
        self.ended = False
        self.deadline = deadline  # time.monotonic() to give up at (the job goes on)

    def run(self) -> dict[str, Any]:
        """Until the job is final and its log fully shown; returns the final job."""
        self.display.job(self.job)
        try:
            self._follow()
        except KeyboardInterrupt:
            self.display.close()
            say(f"stopped following job {self.job['id']}: it goes on (jobs logs ID -f)")
            raise
        finally:
            self.display.close()
        if self.job.get("status") not in FINAL:
            self.job = self.api.get(f"jobs/{self.job['id']}/")
        return self.job

    def _follow(self) -> None:
        failures = 0
        while not self.ended:
            self._check_deadline()
            how = self._stream()
            if self.ended:
                return
            if how == REFUSED:  # no stream for us now: poll instead
                self._poll_until_end()
                return
            failures = failures + 1 if how == UNREACHABLE else 0
            if failures > MAX_FAILED_CONNECTS:
                raise CliError(f"cannot reach {self.api.url} to follow the job; giving up")
            time.sleep(min(0.2 * 2**failures, 5.0) if failures else 0.05)

    def _stream(self) -> str:
        """Reads the stream until it ends or drops: ENDED, DROPPED, UNREACHABLE or REFUSED
        (the server has no stream to spare)."""
        import httpx

        headers = {"Accept": "text/event-stream"}
        if self.after:
            headers["Last-Event-ID"] = str(self.after)
        connected = False
        try:
            with self.api.stream(f"jobs/{self.job['id']}/events/", headers) as response:
                connected = True
                if response.status_code in (429, 503):
                    return REFUSED
                if not response.is_success:
                    response.read()
                    from .client import error_from

                    raise error_from(response)
                for event in events(self._lines(response)):
                    self._event(event.event, event.data)
                    if self.ended:
                        break
        except (httpx.TransportError, httpx.StreamError):
            return DROPPED if connected else UNREACHABLE
        return ENDED

    def _lines(self, response: httpx.Response) -> Iterator[str]:
        """The stream's lines; its keep-alives (every few seconds) let the deadline bite."""
        for line in response.iter_lines():
            self._check_deadline()
            yield line

    def _check_deadline(self) -> None:
        if self.deadline is None or time.monotonic() < self.deadline:
            return
        job_id = self.job.get("id")
        raise CliError(
            f"gave up waiting: job {job_id} is still {self.job.get('status')} after the timeout",
            Exit.ERROR,
            [f"it goes on; follow it with: portalctl jobs logs -f {job_id}"],
        )

    def _event(self, name: str, data: str) -> None:
        body = json.loads(data) if data else {}
        if name == "log":
            self._log(body)
        elif name == "job":
            self.job = body
            self.display.job(body)
        elif name == "end":
            self.ended = True
            if body.get("status") and self.job.get("status") not in FINAL:
                self.job = {**self.job, "status": body["status"]}

    def _log(self, entry: dict[str, Any]) -> None:
        if int(entry.get("id", 0)) <= self.after:
            return  # already shown before a reconnect
        self.after = int(entry["id"])
        self.display.log(entry)

    def _poll_until_end(self) -> None:
        job_path = f"jobs/{self.job['id']}/"
        while True:
            for entry in self.api.get(f"{job_path}log/", after=self.after):
                self._log(entry)
            job = self.api.get(job_path)
            if job != self.job:
                self.job = job
                self.display.job(job)
            if job.get("status") in FINAL:
                for entry in self.api.get(f"{job_path}log/", after=self.after):
                    self._log(entry)
                self.ended = True
                return
            self._check_deadline()
            time.sleep(POLL_SECONDS)


def follow(
    api: Api,
    job: dict[str, Any],
    *,
    logs_to_stdout: bool = False,
    all_logs: bool = False,
    deadline: float | None = None,
) -> dict[str, Any]:
    """Follow a job with the display that suits where the output goes; `all_logs` shows
    every log line in plain output too (a deploy's log is its build's output)."""
    from .display import make_display

    display = make_display(logs_to_stdout=logs_to_stdout, all_logs=all_logs)
    return Follower(api, job, display, deadline=deadline).run()


def outcome(job: dict[str, Any], *, what: Callable[[dict[str, Any]], str] | None = None) -> None:
    """Raise exit 6 unless the job succeeded."""
    status = job.get("status")
    if status == "succeeded":
        return
    label = what(job) if what else f"job {job.get('id')}"
    reason = job.get("error") or status
    details = [f"code: {job['error_code']}"] if job.get("error_code") else []
    details.append(f"see its log: portalctl jobs logs {job.get('id')}")
    raise CliError(f"{label} {status}: {reason}", Exit.JOB_FAILED, details)
