"""Request-scoped identity plumbing: the audit address, and 2FA enforcement for staff."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse

from portal.errors import ErrorCode

from .audit import client_address, request_address

# Paths a user who must finish 2FA may still reach.
_OPEN_PREFIXES = ("/accounts/login", "/accounts/logout", "/accounts/2fa", "/static/", "/healthz")


class AuditContextMiddleware:
    """Makes the client's address available to `audit_record` for the whole request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with request_address(client_address(request)):
            return self.get_response(request)


class OtpRequiredMiddleware:
    """With OTP_REQUIRED_FOR_STAFF, a staff session must be 2FA-verified (enrolled first).

    Only session logins are concerned: API tokens authenticate in the view, later, and
    are not subject to 2FA.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if (
            settings.OTP_REQUIRED_FOR_STAFF
            and user is not None
            and user.is_authenticated
            and user.is_staff
            and not user.is_verified()
            and not request.path.startswith(_OPEN_PREFIXES)
        ):
            if request.path.startswith("/api/"):
                return JsonResponse(
                    {
                        "code": ErrorCode.OTP_REQUIRED,
                        "message": "staff accounts must use two-factor authentication; "
                        "set it up at /accounts/2fa/",
                        "detail": {},
                    },
                    status=403,
                )
            return redirect(f"{reverse('accounts:2fa')}?required=1")
        return self.get_response(request)
