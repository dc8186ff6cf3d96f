"""The standing security suite: schemathesis against the live server, and the GUI's
authorization matrix. Its figures join the reliability suite's (tests/reliability/figures.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.reliability import figures


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    figures.count_case(report)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    figures.summary(terminalreporter)
