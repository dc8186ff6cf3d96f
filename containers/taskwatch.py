"""Waiting for Proxmox tasks with one poll per node, however many tasks are waited on.

A worker thread that polled its own task's status every interval would make the
calls per interval grow with the jobs in flight. Instead, the threads of a process
that wait on tasks of one node share a poll of that node's active task list
(`GET /nodes/{node}/tasks?source=active`): whichever waiter finds the poll due makes
it, for all of them. A task that is no longer listed as running wakes its waiter,
which then asks for that task's own status: Proxmox's authoritative answer, with the
exit status. If the list cannot be read, every waiter asks for itself (and so meets
the error and its classification). Waiters also ask for themselves every
`PROXMOX_TASK_CHECK_INTERVAL`, in case a task is missing from the list (a list cut
short, a token that sees only some tasks): correctness never rests on the list.

Tasks of one kind on one node take much the same time (a start, a create from the
same template), so the first own check of a task comes when the last one of its kind
was seen to end (`DurationGuess`); a task that is done by then costs one status call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

ActiveLister = Callable[[], Iterable[dict[str, Any]]]


def running_upids(entries: Iterable[dict[str, Any]]) -> set[str]:
    """UPIDs of the entries still running (no status yet, or `RUNNING` as Proxmox shows it)."""
    return {
        str(e.get("upid"))
        for e in entries
        if not e.get("status") or str(e.get("status")).upper() == "RUNNING"
    }


class NodeWatch:
    """The tasks waited on for one node of one API endpoint, and when to poll next.

    A waiter may say from when it wants the shared poll (`poll_from`): one with a
    learnt guess needs none before its guess is due, so a lone job whose task ends on
    time costs one status call and no list at all.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # upid -> (event, interval, poll_from)
        self._waiters: dict[str, tuple[threading.Event, float, float]] = {}
        self._next_poll = 0.0
        self._polling = False

    def add(self, upid: str, interval: float, *, poll_from: float = 0.0) -> threading.Event:
        event = threading.Event()
        with self._lock:
            self._waiters[upid] = (event, interval, poll_from)
        return event

    def set_interval(self, upid: str, interval: float) -> None:
        with self._lock:
            if upid in self._waiters:
                event, _, poll_from = self._waiters[upid]
                self._waiters[upid] = (event, interval, poll_from)

    def remove(self, upid: str) -> None:
        with self._lock:
            self._waiters.pop(upid, None)

    def _due_at(self) -> float:
        wanted = min((w[2] for w in self._waiters.values()), default=float("inf"))
        return max(self._next_poll, wanted)

    def due_in(self) -> float:
        """Seconds until the next shared poll is due (0 if due now, inf if nobody wants one)."""
        with self._lock:
            return max(0.0, self._due_at() - time.monotonic())

    def poll_if_due(self, list_active: ActiveLister) -> bool:
        """Make the shared poll if it is due and nobody else is making it; True if made."""
        with self._lock:
            now = time.monotonic()
            if self._polling or now < self._due_at():
                return False
            self._polling = True
            # The closest interval any waiter asked for (a long task asks less often).
            self._next_poll = now + min(w[1] for w in self._waiters.values())
            watched = dict(self._waiters)
        running: set[str] | None
        try:
            running = running_upids(list_active())
        except Exception:
            running = None  # every waiter asks Proxmox itself, and meets the error
        with self._lock:
            self._polling = False
        for upid, (event, _, _) in watched.items():
            if running is None or upid not in running:
                event.set()
        return True


_watches: dict[tuple[str, str], NodeWatch] = {}
_watches_lock = threading.Lock()


def watch_for(endpoint: str, node: str) -> NodeWatch:
    """The process-wide watch of `node` as seen through `endpoint`."""
    key = (endpoint, node)
    with _watches_lock:
        watch = _watches.get(key)
        if watch is None:
            watch = _watches[key] = NodeWatch()
        return watch


class DurationGuess:
    """When to first ask about a task: about when the last ones of its kind ended.

    Learnt per (endpoint, node, task type), from how a wait went: a task seen done
    at the guess or before it shortens the guess a little (and to at most when it was
    seen done), so it tracks the real duration from just above; one found still
    running at the guess lengthens it a little (or to what it took, if far longer).
    """

    # Hits shorten the guess a little, misses lengthen it more: it settles where about
    # one first check in ten is too early (the 90th percentile of what tasks take).
    SHRINK = 0.998
    GROW = 1.02

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._guesses: dict[tuple[str, str, str], float] = {}

    def get(self, key: tuple[str, str, str]) -> float | None:
        with self._lock:
            return self._guesses.get(key)

    def learn(self, key: tuple[str, str, str], *, took: float, outcome: str) -> None:
        """outcome: "early" (done before the guess), "hit" (done at it) or "late" (running at it)."""
        with self._lock:
            guess = self._guesses.get(key)
            if guess is None:
                self._guesses[key] = took
            elif outcome in ("early", "hit"):
                # Seen done at `took` or sooner: it ended some time before that.
                self._guesses[key] = min(guess * self.SHRINK, took)
            else:
                grown = guess * self.GROW
                self._guesses[key] = grown if took < 1.5 * grown else took * 0.95


durations = DurationGuess()
