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
from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    """Every code an error can carry: what scripts match on, so each is written once here.

    A StrEnum: each member is its string, in JSON, in the database and in comparisons.
    """

    # The classes' own codes (below): raise the class and the code comes with it.
    ERROR = "error"
    INVALID = "invalid"
    NOT_FOUND = "not_found"
    PERMISSION_DENIED = "permission_denied"
    CONFLICT = "conflict"
    INVALID_STATE = "invalid_state"
    QUOTA_EXCEEDED = "quota_exceeded"
    RESOURCE_EXHAUSTED = "resource_exhausted"
    TOO_MANY = "too_many"
    BUSY = "busy"
    UPSTREAM_ERROR = "upstream_error"
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"
    APPLY_FAILED = "apply_failed"
    DEPLOY_FAILED = "deploy_failed"
    INVALID_TOKEN = "invalid_token"
    # Input that is refused (ValidationFailed).
    INVALID_CODE = "invalid_code"
    INVALID_DOMAIN = "invalid_domain"
    INVALID_FORWARDER = "invalid_forwarder"
    INVALID_HOSTNAME = "invalid_hostname"
    INVALID_JOB_KIND = "invalid_job_kind"
    INVALID_NETWORK = "invalid_network"
    INVALID_RANGE = "invalid_range"
    INVALID_RESOURCES = "invalid_resources"
    INVALID_SERVICE_NAME = "invalid_service_name"
    INVALID_SLUG = "invalid_slug"
    INVALID_WEBHOOK = "invalid_webhook"
    INVALID_WAZUH_GROUP = "invalid_wazuh_group"
    EXTEND_BEYOND_POLICY = "extend_beyond_policy"
    NO_EXPIRY = "no_expiry"
    RESERVED_HOSTNAME = "reserved_hostname"
    NO_CHANGE = "no_change"
    NO_TEMPLATE = "no_template"
    IS_OWNER = "is_owner"
    DEFAULT_ROUTE = "default_route"
    DEFAULT_PORT = "default_port"
    REAUTHENTICATION_FAILED = "reauthentication_failed"
    # Something else holds what was asked for (Conflict).
    ALLOCATION_CONFLICT = "allocation_conflict"
    ALREADY_COLLABORATOR = "already_collaborator"
    DUPLICATE_KEY = "duplicate_key"
    HOSTNAME_TAKEN = "hostname_taken"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    JOB_IN_PROGRESS = "job_in_progress"
    NAME_MISMATCH = "name_mismatch"
    PORT_PUBLISHED = "port_published"
    REQUEST_PENDING = "request_pending"
    SERVICE_EXISTS = "service_exists"
    SUBDOMAIN_TAKEN = "subdomain_taken"
    VMID_TAKEN = "vmid_taken"
    # Nothing left to hand out (ResourceExhausted).
    IP_EXHAUSTED = "ip_exhausted"
    PORTS_EXHAUSTED = "ports_exhausted"
    VMID_EXHAUSTED = "vmid_exhausted"
    NO_ACTIVE_NODE = "no_active_node"
    NO_NODES = "no_nodes"
    PLACEMENT_MISCONFIGURED = "placement_misconfigured"
    # Not there (NotFound).
    USER_NOT_FOUND = "user_not_found"
    NOT_COLLABORATOR = "not_collaborator"
    # Too much at once (TooMany, Busy).
    TOO_MANY_STREAMS = "too_many_streams"
    STREAMS_BUSY = "streams_busy"
    # Outside systems: Proxmox, a node, the directory, the gateway.
    PROXMOX_ERROR = "proxmox_error"
    PROXMOX_UNAVAILABLE = "proxmox_unavailable"
    PROXMOX_NOT_FOUND = "proxmox_not_found"
    PROXMOX_TASK_FAILED = "proxmox_task_failed"
    PROXMOX_TASK_RETRYABLE = "proxmox_task_retryable"
    NODE_UNAVAILABLE = "node_unavailable"
    DIRECTORY_ERROR = "directory_error"
    DIRECTORY_UNAVAILABLE = "directory_unavailable"
    GATEWAY_FAILED = "gateway_failed"
    GATEWAY_TIMEOUT = "gateway_timeout"
    GATEWAY_UNAVAILABLE = "gateway_unavailable"
    WAZUH_ERROR = "wazuh_error"
    WAZUH_UNAVAILABLE = "wazuh_unavailable"
    WAZUH_AUTH_FAILED = "wazuh_auth_failed"
    # The step of a gateway apply that failed (ApplyFailed; stored on the revision).
    RENDER = "render"
    VALIDATE = "validate"
    RELOAD = "reload"
    SERVER_DOWN = "server_down"
    # The API's answers for what DRF or Django refuse before a service runs.
    NOT_AUTHENTICATED = "not_authenticated"
    AUTHENTICATION_FAILED = "authentication_failed"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    NOT_ACCEPTABLE = "not_acceptable"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    THROTTLED = "throttled"
    PARSE_ERROR = "parse_error"
    BAD_REQUEST = "bad_request"
    SERVER_ERROR = "server_error"
    TOKEN_SCOPE = "token_scope"
    TOKEN_NEEDS_SESSION = "token_needs_session"
    OTP_REQUIRED = "otp_required"
    OTP_INVALID = "otp_invalid"
    OTP_SETUP_REQUIRED = "otp_setup_required"
    LOCKED_OUT = "locked_out"


class PortalError(Exception):
    code: str = ErrorCode.ERROR
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

    code = ErrorCode.INVALID
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
    code = ErrorCode.NOT_FOUND
    http_status = 404


class LoginFailed(PortalError):
    """Credentials that do not sign anyone in: a wrong password, or a second factor that
    is missing (`otp_required`) or wrong (`otp_invalid`)."""

    code = ErrorCode.AUTHENTICATION_FAILED
    http_status = 401


class PermissionDenied(PortalError):
    code = ErrorCode.PERMISSION_DENIED
    http_status = 403


class LockedOut(PermissionDenied):
    """Too many failed logins from this user and address (django-axes)."""

    code = ErrorCode.LOCKED_OUT


class Conflict(PortalError):
    code = ErrorCode.CONFLICT
    http_status = 409


class InvalidState(Conflict):
    code = ErrorCode.INVALID_STATE


class QuotaExceeded(Conflict):
    code = ErrorCode.QUOTA_EXCEEDED


class ResourceExhausted(Conflict):
    code = ErrorCode.RESOURCE_EXHAUSTED


class TooMany(PortalError):
    """Too many at once for this caller (open event streams); `extra["retry_after"]`
    is the seconds to wait, sent as the Retry-After header too."""

    code = ErrorCode.TOO_MANY
    http_status = 429


class Busy(PortalError):
    """The server has no room for this now (its event stream threads are taken)."""

    code = ErrorCode.BUSY
    http_status = 503


class UpstreamError(PortalError):
    """An outside system (Proxmox, LDAP, the gateway) refused for good."""

    code = ErrorCode.UPSTREAM_ERROR
    http_status = 502


class UpstreamUnavailable(UpstreamError):
    """An outside system is unreachable or busy for now; worth retrying."""

    code = ErrorCode.UPSTREAM_UNAVAILABLE
    http_status = 503


class ApplyFailed(UpstreamError):
    """The gateway could not render, validate, install or reload a configuration.

    `code` names the step that failed and is stored on the revision; the TRANSIENT
    ones (a server down, a reload that did not take) are worth another try.
    """

    code = ErrorCode.APPLY_FAILED
    TRANSIENT = frozenset({ErrorCode.SERVER_DOWN, ErrorCode.RELOAD})


class DeployFailed(PortalError):
    """A deploy's own step failed in the container (its install, build, start or health
    check): the app's doing, not the portal's, so it is not retried."""

    code = ErrorCode.DEPLOY_FAILED
    http_status = 422


class TokenInvalid(PortalError):
    """Why a bearer token was refused (the message is safe to show)."""

    code = ErrorCode.INVALID_TOKEN
    http_status = 401
