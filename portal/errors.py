"""The portal's one error hierarchy.

Every domain error carries a stable `code` (what scripts match on), a `message` a
user can act on, and `extra` details. Interfaces render them all the same way:
the API as `{"code", "message", "detail"}` with the HTTP status below, the GUI as
the form error, the CLI as its one-line reason.
"""

from __future__ import annotations

from typing import Any


class PortalError(Exception):
    code = "error"
    http_status = 400

    def __init__(self, message: str, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.extra = extra

    def __str__(self) -> str:
        return self.message


class ValidationFailed(PortalError):
    """Input that the portal will not accept; `extra["field"]` names the field."""

    code = "invalid"
    http_status = 400


class NotFound(PortalError):
    code = "not_found"
    http_status = 404


class PermissionDenied(PortalError):
    code = "permission_denied"
    http_status = 403


class Conflict(PortalError):
    code = "conflict"
    http_status = 409


class InvalidState(Conflict):
    code = "invalid_state"


class QuotaExceeded(Conflict):
    code = "quota_exceeded"


class ResourceExhausted(Conflict):
    code = "resource_exhausted"


class TooMany(PortalError):
    """Too many at once for this caller (open event streams); `extra["retry_after"]`
    is the seconds to wait, sent as the Retry-After header too."""

    code = "too_many"
    http_status = 429


class Busy(PortalError):
    """The server has no room for this now (its event stream threads are taken)."""

    code = "busy"
    http_status = 503


class UpstreamError(PortalError):
    """An outside system (Proxmox, LDAP, the gateway) refused for good."""

    code = "upstream_error"
    http_status = 502


class UpstreamUnavailable(UpstreamError):
    """An outside system is unreachable or busy for now; worth retrying."""

    code = "upstream_unavailable"
    http_status = 503
