"""The standing suite's figures, printed at the end of the session:
"N cases, N faults, N leaks, N 5xx" (cases run, faults injected, agreement failures,
server errors seen). The reliability and security suites count into it, in either room
(tests/fixtures/standing.py counts and prints)."""

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


def count_fault(n: int = 1) -> None:
    FIGURES.faults += n


def count_leaks(n: int) -> None:
    FIGURES.leaks += n


def count_5xx(n: int = 1) -> None:
    FIGURES.server_errors += n


def count_case(report: pytest.TestReport) -> None:
    """One case per suite test that ran (its call phase), whatever the outcome."""
    if report.when == "call" and any(m in report.keywords for m in SUITE_MARKERS):
        FIGURES.cases += 1


def summary(terminalreporter: Any) -> None:
    if FIGURES.printed or not FIGURES.cases:
        return
    FIGURES.printed = True
    terminalreporter.write_sep("=", "standing suite")
    terminalreporter.write_line(FIGURES.line())
