"""Errors as Proxmox sends them.

Proxmox is written in Perl and most of its messages are ``die "...\\n"``:
the JSON body carries the text with its trailing newline, while the HTTP
reason phrase is only the first line (pve-http-server ``response()``).
"""

from __future__ import annotations

from collections.abc import Mapping


class ApiError(Exception):
    """An API failure: status code, message as Perl produced it, and errors."""

    def __init__(
        self,
        status: int,
        message: str,
        errors: Mapping[str, str] | None = None,
        *,
        body: bool = True,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = dict(errors) if errors else None
        # Errors raised before the REST handler (auth, 501 for content on
        # GET) have an empty body in pve-http-server.
        self.body = body

    @property
    def reason(self) -> str:
        return reason_phrase(self.message)


def reason_phrase(message: str) -> str:
    """First line of a message, safe to put in an HTTP status line."""
    line = message.split("\n", 1)[0].replace("\r", "")
    # http.server encodes the status line as latin-1.
    return line.encode("latin-1", "replace").decode("latin-1")


def die(message: str, status: int = 500) -> ApiError:
    """A plain Perl ``die "$message\\n"``: 500 with the text and a newline."""
    return ApiError(status, message + "\n")


def param_error(errors: Mapping[str, str]) -> ApiError:
    """``raise_param_exc``: 400 Parameter verification failed."""
    return ApiError(400, "Parameter verification failed.\n", errors)


def perm_error(what: str | None = None) -> ApiError:
    """``raise_perm_exc``: 403 Permission check failed (what)."""
    msg = "Permission check failed"
    if what:
        msg += f" ({what})"
    return ApiError(403, msg + "\n")


class TaskFailure(Exception):
    """Raised inside a worker; the text becomes the task's exit status."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message.rstrip("\n")


class InjectedFailure(TaskFailure):
    """A failure injected by a fault: its text is the exit status as given."""
