"""One error shape for the whole API: {"code", "message", "detail"}."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from portal.errors import NON_FIELD, ErrorCode, PortalError


class ErrorSerializer(serializers.Serializer):
    """What every error response carries (documented once, used by every endpoint)."""

    code = serializers.CharField(
        help_text="Stable machine-readable code, e.g. quota_exceeded, hostname_taken."
    )
    message = serializers.CharField(help_text="A sentence a user can act on.")
    detail = serializers.DictField(
        child=serializers.JSONField(),
        help_text="Every field's errors at once ({field: [messages]}), or extra facts.",
    )


DRF_CODES = {
    exceptions.NotAuthenticated: ErrorCode.NOT_AUTHENTICATED,
    exceptions.AuthenticationFailed: ErrorCode.AUTHENTICATION_FAILED,
    exceptions.PermissionDenied: ErrorCode.PERMISSION_DENIED,
    exceptions.NotFound: ErrorCode.NOT_FOUND,
    exceptions.MethodNotAllowed: ErrorCode.METHOD_NOT_ALLOWED,
    exceptions.NotAcceptable: ErrorCode.NOT_ACCEPTABLE,
    exceptions.UnsupportedMediaType: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    exceptions.Throttled: ErrorCode.THROTTLED,
    exceptions.ParseError: ErrorCode.PARSE_ERROR,
}


def _flatten(detail: Any) -> str:
    """One sentence for `message`: each field's first error (all are in `detail`)."""
    if isinstance(detail, dict):
        parts = []
        for key, value in detail.items():
            inner = _flatten(value)
            parts.append(inner if key == NON_FIELD else f"{key}: {inner}")
        return "; ".join(parts) or "invalid input"
    if isinstance(detail, list):
        return _flatten(detail[0]) if detail else "invalid input"
    return str(detail)


def error_response(
    code: str,
    message: str,
    detail: dict[str, Any] | None,
    http_status: int,
    headers: dict[str, str] | None = None,
) -> Response:
    return Response(
        {"code": code, "message": message, "detail": detail or {}},
        status=http_status,
        headers=headers,
    )


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, PortalError):
        # Field errors (every one of them: see portal.errors.FieldErrors), or extra facts.
        detail: dict[str, Any] = exc.field_errors or {
            k: v for k, v in exc.extra.items() if k not in ("field", "fields")
        }
        retry_after = exc.extra.get("retry_after")
        headers = {"Retry-After": str(int(retry_after))} if retry_after else None
        return error_response(exc.code, exc.message, detail, exc.http_status, headers)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, exceptions.ValidationError):
        fields: dict[str, Any] = (
            dict(exc.detail) if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        )
        return error_response("invalid", _flatten(fields), fields, status.HTTP_400_BAD_REQUEST)
    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response
    code: str = next((c for cls, c in DRF_CODES.items() if isinstance(exc, cls)), ErrorCode.ERROR)
    own = getattr(exc.detail, "code", None)
    if isinstance(own, str) and own != exc.default_code:
        code = own  # a permission's own code, e.g. token_scope, token_needs_session
    headers = {
        k: v
        for k, v in response.headers.items()
        if k.lower() in ("www-authenticate", "retry-after", "allow")
    }
    return error_response(code, _flatten(exc.detail), {}, response.status_code, headers)


# -- errors Django answers before DRF sees the request (no URL matched, a crash) ---------------
API_PREFIX = "/api/"


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


def _json_error(code: str, message: str, http_status: int) -> JsonResponse:
    return JsonResponse({"code": code, "message": message, "detail": {}}, status=http_status)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return _json_error(
            ErrorCode.BAD_REQUEST, "the request was refused: too large or malformed", 400
        )
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return _json_error(ErrorCode.PERMISSION_DENIED, "you may not do this", 403)
    return defaults.permission_denied(request, exception)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """An /api/ path no route matches (an unknown endpoint, or an id of the wrong form)."""
    if _is_api(request):
        return _json_error(ErrorCode.NOT_FOUND, "no such endpoint or object", 404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        return _json_error(ErrorCode.SERVER_ERROR, "the portal failed; the error was logged", 500)
    return defaults.server_error(request)
