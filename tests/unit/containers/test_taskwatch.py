"""Waiting for Proxmox tasks: a shared poll per node, learnt first checks, and fallbacks.

The cases without the simulator (the node watch and the duration guess on their own);
the ones through it are in tests/functional/containers/test_taskwatch.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from containers.taskwatch import DurationGuess, NodeWatch, running_upids


def test_running_upids_reads_both_ways_proxmox_marks_a_running_task() -> None:
    entries = [
        {"upid": "UPID:a", "status": "RUNNING"},
        {"upid": "UPID:b"},
        {"upid": "UPID:c", "status": "OK"},
        {"upid": "UPID:d", "status": "unable to start"},
    ]
    assert running_upids(entries) == {"UPID:a", "UPID:b"}


def test_a_poll_wakes_only_the_waiters_whose_task_left_the_list() -> None:
    watch = NodeWatch()
    done, running = watch.add("UPID:done", 0.1), watch.add("UPID:running", 0.1)
    assert watch.poll_if_due(lambda: [{"upid": "UPID:running"}])
    assert done.is_set() and not running.is_set()
    assert not watch.poll_if_due(lambda: [])  # not due again for 0.1 s
    assert watch.due_in() > 0


def test_a_poll_that_fails_wakes_every_waiter() -> None:
    watch = NodeWatch()
    events = [watch.add(f"UPID:{i}", 0.1) for i in range(3)]

    def broken() -> list[dict[str, Any]]:
        raise RuntimeError("595 Connection refused")

    watch.poll_if_due(broken)
    assert all(e.is_set() for e in events)


def test_the_guess_tracks_the_duration_from_just_above() -> None:
    guesses = DurationGuess()
    key = ("https://pve", "pve1", "vzstart")
    guesses.learn(key, took=1.2, outcome="early")  # the first one: what it took
    assert guesses.get(key) == 1.2
    guesses.learn(key, took=1.05, outcome="early")  # seen done sooner: at most that
    assert guesses.get(key) == 1.05
    guesses.learn(key, took=1.05, outcome="hit")  # done at the guess: a little shorter
    assert guesses.get(key) == pytest.approx(1.05 * DurationGuess.SHRINK)
    before = guesses.get(key) or 0.0
    guesses.learn(key, took=1.1, outcome="late")  # too early: a little longer
    assert guesses.get(key) == pytest.approx(before * DurationGuess.GROW)
    guesses.learn(key, took=30.0, outcome="late")  # far longer: what it took
    assert guesses.get(key) == pytest.approx(30.0 * 0.95)
