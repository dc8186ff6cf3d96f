"""The standing suite's figures, printed at the end of the session:
"N cases, N faults, N leaks, N 5xx" (cases run, faults injected, agreement failures,
server errors seen). The reliability and security suites count into it, in either room
(tests/fixtures/standing.py counts and prints).

Under pytest-xdist a test runs in a worker process while the summary is printed by the
process that started the workers: the faults, leaks and 5xx a test counted travel to it on
the test's teardown report (`PENDING` -> `report.user_properties` -> `FIGURES`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

SUITE_MARKERS = ("reliability", "security")


@dataclass
class Figures:
    cases: int = 0
    faults: int = 0
    leaks: int = 0
    server_errors: int = 0
    printed: bool = False

    def line(self) -> str:
        return (
            f"{self.cases} cases, {self.faults} faults, {self.leaks} leaks, "
            f"{self.server_errors} 5xx"
        )


FIGURES = Figures()
# Counted by the running test, not yet on a report: [faults, leaks, 5xx].
PENDING = [0, 0, 0]
PROPERTY = "standing-figures"


def count_fault(n: int = 1) -> None:
    PENDING[0] += n


def count_leaks(n: int) -> None:
    PENDING[1] += n


def count_5xx(n: int = 1) -> None:
    PENDING[2] += n


def attach_pending(report: pytest.TestReport) -> None:
    """Move what the test counted onto its teardown report (in the process that ran it)."""
    if report.when == "teardown" and any(PENDING):
        report.user_properties.append((PROPERTY, tuple(PENDING)))
        PENDING[:] = [0, 0, 0]


def count_case(report: pytest.TestReport) -> None:
    """One case per suite test that ran (its call phase), whatever the outcome; and the
    figures a test's report carries (in the process that prints the summary)."""
    if report.when == "call" and any(m in report.keywords for m in SUITE_MARKERS):
        FIGURES.cases += 1
    for name, value in report.user_properties:
        if name == PROPERTY:
            faults, leaks, server_errors = value
            FIGURES.faults += faults
            FIGURES.leaks += leaks
            FIGURES.server_errors += server_errors


def summary(terminalreporter: Any) -> None:
    if FIGURES.printed or not FIGURES.cases:
        return
    FIGURES.printed = True
    terminalreporter.write_sep("=", "standing suite")
    terminalreporter.write_line(FIGURES.line())
