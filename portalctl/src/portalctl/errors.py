"""Exit codes, and the errors that carry them to `main`, which prints them on stderr."""

from __future__ import annotations

import json
from enum import IntEnum
from typing import Any


class Exit(IntEnum):
    """What a script can rely on (docs/cli.md lists them)."""

    OK = 0
    ERROR = 1  # anything else: invalid input, the server failed or is unreachable
    USAGE = 2  # the command line itself is wrong (click's own code for usage errors)
    NOT_FOUND = 3
    AUTH = 4  # not authenticated (no token, a revoked or expired one) or forbidden
    CONFLICT = 5  # a job in progress, a name taken, over quota, an invalid state
    JOB_FAILED = 6  # the job ran and failed (or was cancelled)


def exit_for_status(status: int) -> Exit:
    if status in (401, 403):
        return Exit.AUTH
    if status == 404:
        return Exit.NOT_FOUND
    if status == 409:
        return Exit.CONFLICT
    return Exit.ERROR


class CliError(Exception):
    """An error to print (one line, then any details) and an exit code."""

    def __init__(
        self, message: str, exit_code: Exit = Exit.ERROR, details: list[str] | None = None
    ):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.details = details or []


class ApiError(CliError):
    """The API refused: its own body, {"code", "message", "detail"}."""

    def __init__(self, status: int, code: str, message: str, detail: Any) -> None:
        self.status, self.code, self.detail = status, code, detail
        message = message or f"HTTP {status}"
        super().__init__(message, exit_for_status(status), _details(detail, message))


def _details(detail: Any, message: str) -> list[str]:
    """The API's field errors (or extra facts), one line each: `field: message`; those the
    message already says (it sums the first of each up) are left out."""
    if not isinstance(detail, dict):
        return []
    lines: list[str] = []
    for field, value in detail.items():
        for item in value if isinstance(value, list) else [value]:
            text = item if isinstance(item, str) else json.dumps(item)
            if text in message:
                continue
            lines.append(text if field == "non_field_errors" else f"{field}: {text}")
    return lines
