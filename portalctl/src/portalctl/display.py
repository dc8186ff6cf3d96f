"""How a followed job is shown: its steps live with rich on a terminal, plain lines when
stderr is a pipe or a file (a CI log), or its log on stdout (`jobs logs -f`)."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

from .output import err, out, when

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.live import Live

    from .follow import Display

ICONS = {
    "done": "[green]✓[/]",
    "failed": "[red]✗[/]",
    "skipped": "[dim]↷[/]",
    "pending": "[dim]·[/]",
}


def job_label(job: dict[str, Any]) -> str:
    target = job.get("container_hostname") or "-"
    return f"{job.get('kind', 'job')} {target} (job {str(job.get('id', ''))[:8]})"


def log_line(entry: dict[str, Any]) -> str:
    level = str(entry.get("level", "info")).upper()
    stamp = when(entry.get("created_at"))[11:]
    return f"{stamp} {level:<7} {entry.get('message', '')}"


class PlainSteps:
    """One line per change: the job's status, each step as it starts and ends, warnings."""

    def __init__(self, *, all_logs: bool = False) -> None:
        self.states: dict[str, str] = {}
        self.status = ""
        self.all_logs = all_logs  # every log line, not only warnings and errors

    def _print(self, line: str) -> None:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def job(self, job: dict[str, Any]) -> None:
        status = str(job.get("status"))
        final = status in ("succeeded", "failed", "cancelled")
        if status != self.status and not final:
            self._print(f"{job_label(job)}: {status}")
        self._steps(job.get("steps") or [])
        if status != self.status and final:  # the last steps first, then how it ended
            self._print(f"{job_label(job)}: {status}")
        self.status = status

    def _steps(self, steps: list[dict[str, Any]]) -> None:
        for n, step in enumerate(steps, 1):
            state = str(step.get("state"))
            if self.states.get(step.get("name", "")) == state or state == "pending":
                continue
            self.states[str(step.get("name"))] = state
            self._print(f"  step {n}/{len(steps)} {state}: {step.get('title', step.get('name'))}")

    def log(self, entry: dict[str, Any]) -> None:
        if self.all_logs or str(entry.get("level", "")).lower() in ("warning", "error"):
            self._print("  " + log_line(entry))

    def close(self) -> None:
        pass


class RichSteps:
    """A live panel of the steps (a spinner on the running one) with the log above it."""

    def __init__(self) -> None:
        from rich.live import Live

        self.current: dict[str, Any] = {}
        self.began = time.monotonic()
        # Live renders this object on every refresh (__rich__): the clock keeps moving.
        self.live: Live = Live(self, console=err(), refresh_per_second=8, transient=False)
        self.live.start()

    def __rich__(self) -> RenderableType:
        from rich.console import Group
        from rich.markup import escape
        from rich.spinner import Spinner
        from rich.table import Table

        job = self.current
        grid = Table.grid(padding=(0, 1))
        grid.add_column(width=2)
        grid.add_column()
        for step in job.get("steps") or []:
            state = str(step.get("state"))
            title = escape(str(step.get("title", step.get("name"))))
            icon: Any = (
                Spinner("dots", style="cyan") if state == "running" else ICONS.get(state, "")
            )
            grid.add_row(icon, title if state != "pending" else f"[dim]{title}[/]")
        status = escape(str(job.get("status", "…")))
        head = (
            f"[bold]{escape(job_label(job))}[/]  {status}  {job.get('progress', 0)}%  "
            f"[dim]{time.monotonic() - self.began:.1f}s[/]"
            if job
            else "[bold]waiting for the job…[/]"
        )
        return Group(head, grid)

    def job(self, job: dict[str, Any]) -> None:
        self.current = job
        self.live.refresh()

    def log(self, entry: dict[str, Any]) -> None:
        from rich.markup import escape

        level = str(entry.get("level", "")).lower()
        style = {"warning": "yellow", "error": "red"}.get(level, "dim")
        self.live.console.print(f"[{style}]{escape(log_line(entry))}[/]")

    def close(self) -> None:
        if self.live.is_started:
            self.live.refresh()
            self.live.stop()


class LogLines:
    """The job's log entries on stdout, as they come (`jobs logs -f`)."""

    def job(self, job: dict[str, Any]) -> None:
        pass

    def log(self, entry: dict[str, Any]) -> None:
        from rich.markup import escape

        if out().is_terminal:
            out().print(escape(log_line(entry)))
        else:
            sys.stdout.write(log_line(entry) + "\n")
            sys.stdout.flush()

    def close(self) -> None:
        pass


def make_display(*, logs_to_stdout: bool, all_logs: bool = False) -> Display:
    if logs_to_stdout:
        return LogLines()
    return RichSteps() if err().is_terminal else PlainSteps(all_logs=all_logs)
