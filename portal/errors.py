"""The portal's one error hierarchy.

Every domain error carries a stable `code` (what scripts match on), a `message` a
user can act on, and `extra` details. Interfaces render them all the same way:
the API as `{"code", "message", "detail"}` with the HTTP status below, the GUI as
the form error, the CLI as its one-line reason.

Input is checked whole: `FieldErrors` collects every field's error before one
`ValidationFailed` is raised, so a form or an API client sees them all at once
(`field_errors`: `{field: [messages]}`, the API's `detail`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
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

    @property
    def field_errors(self) -> dict[str, list[str]]:
        """The error's messages by input field: several (`extra["fields"]`), one
        (`extra["field"]`), or none for an error that is not about a field."""
        fields = self.extra.get("fields")
        if isinstance(fields, dict):
            return {str(k): [str(m) for m in v] for k, v in fields.items()}
        field = self.extra.get("field")
        return {str(field): [self.message]} if field else {}


class ValidationFailed(PortalError):
    """Input that the portal will not accept; `extra["field"]` names the field, or
    `extra["fields"]` maps several fields to their messages (see `FieldErrors`)."""

    code = "invalid"
    http_status = 400


# Where an error about the input as a whole goes among field errors (DRF's name for it).
NON_FIELD = "non_field_errors"


class FieldErrors:
    """Every field error of one input, collected before anything is refused.

        errors = FieldErrors()
        with errors.collect():
            hostname = normalise_hostname(hostname)
        with errors.collect():
            check_resources(template, res)
        errors.raise_if_any()

    One error is raised as it came (its own code and extra); several as one
    ValidationFailed whose message joins them and whose `fields` holds them all.
    """

    def __init__(self) -> None:
        self.caught: list[ValidationFailed] = []

    def __bool__(self) -> bool:
        return bool(self.caught)

    def add(self, message: str, *, field: str | None = None, code: str | None = None) -> None:
        self.caught.append(
            ValidationFailed(message, code=code, **({"field": field} if field else {}))
        )

    def has(self, field: str) -> bool:
        return any(field in exc.field_errors for exc in self.caught)

    @property
    def fields(self) -> dict[str, list[str]]:
        """Every message so far by field (NON_FIELD for those about no one field)."""
        fields: dict[str, list[str]] = {}
        for exc in self.caught:
            for name, messages in (exc.field_errors or {NON_FIELD: [exc.message]}).items():
                fields.setdefault(name, []).extend(messages)
        return fields

    @contextmanager
    def collect(self, *, besides: Collection[str] = ()) -> Iterator[None]:
        """Keep the ValidationFailed raised in the block; `besides` names fields already
        refused elsewhere, whose errors from the block are left out."""
        try:
            yield
        except ValidationFailed as exc:
            kept = {k: v for k, v in exc.field_errors.items() if k not in besides}
            if kept == exc.field_errors:
                self.caught.append(exc)
            else:
                for name, messages in kept.items():
                    self.caught += [
                        ValidationFailed(m, code=exc.code, field=name) for m in messages
                    ]

    def raise_if_any(self) -> None:
        if not self.caught:
            return
        if len(self.caught) == 1:
            raise self.caught[0]
        fields = self.fields
        codes = {exc.code for exc in self.caught}
        raise ValidationFailed(
            "; ".join(exc.message for exc in self.caught),
            code=codes.pop() if len(codes) == 1 else ValidationFailed.code,
            fields=fields,
        )


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


class ApplyFailed(UpstreamError):
    """The gateway could not render, validate, install or reload a configuration.

    `code` names the step that failed and is stored on the revision; the TRANSIENT
    ones (a server down, a reload that did not take) are worth another try.
    """

    code = "apply_failed"
    TRANSIENT = frozenset({"server_down", "reload"})


class TokenInvalid(PortalError):
    """Why a bearer token was refused (the message is safe to show)."""

    code = "invalid_token"
    http_status = 401
