"""Authentication backends: LDAP for everyone, local passwords for break-glass operators.

The order in settings is axes (refuses locked-out users and addresses), then
`PortalLDAPBackend`, then `BreakGlassModelBackend`. When the directory is down, the
login page says so instead of "wrong password" (see `directory_was_down`).
"""

from __future__ import annotations

from typing import Any

import ldap
from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.http import HttpRequest
from django_auth_ldap.backend import LDAPBackend, ldap_error

_DOWN = (ldap.SERVER_DOWN, ldap.TIMEOUT, ldap.CONNECT_ERROR, ldap.BUSY, ldap.UNAVAILABLE)


class PortalLDAPBackend(LDAPBackend):
    """django-auth-ldap, inactive while no directory is configured (AUTH_LDAP_SERVER_URI)."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> Any:
        if not settings.AUTH_LDAP_SERVER_URI or not username or not password:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


class BreakGlassModelBackend(ModelBackend):
    """Local Django passwords: for staff and superusers only, unless LOCAL_LOGIN_FOR_USERS."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> Any:
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            return None
        if settings.LOCAL_LOGIN_FOR_USERS or user.is_staff or user.is_superuser:
            return user
        return None


def _note_directory_down(
    sender: Any,
    context: str,
    user: Any,
    request: HttpRequest | None,
    exception: Exception,
    **kw: Any,
) -> None:
    if request is not None and isinstance(exception, _DOWN):
        request.ldap_unavailable = True  # type: ignore[attr-defined]


ldap_error.connect(_note_directory_down, dispatch_uid="accounts.ldap_down")


def directory_was_down(request: HttpRequest) -> bool:
    return bool(getattr(request, "ldap_unavailable", False))
