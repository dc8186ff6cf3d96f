"""Logins: the audit of each one, a token for a password login (the CLI's `login`), and
unlocking those axes locked out (django-auth-ldap and axes do the checking; the second
factor is auth/two_factor.py).

Keyword-only, typed, atomic, domain errors only; each write records its audit entry here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib.auth import authenticate
from django.db import transaction

from portal.errors import (
    ErrorCode,
    LockedOut,
    LoginFailed,
    PermissionDenied,
    UpstreamUnavailable,
    ValidationFailed,
)

from . import two_factor
from .audit import audit_record
from .backends import directory_was_down
from .selectors import require_staff
from .tokens import TOKEN_EXPIRY_DAYS, token_create

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from django.http import HttpRequest

    from .models import ApiToken

# A token issued for a password always expires.
LOGIN_TOKEN_DAYS = tuple(d for d in TOKEN_EXPIRY_DAYS if d is not None)


def login_record_success(*, user: User, method: str) -> None:
    audit_record(
        actor=user,
        action="login.success",
        obj=user,
        summary=f"{user.get_username()} logged in ({method})",
        changes={"method": method},
    )


def login_record_failure(*, username: str, reason: str) -> None:
    audit_record(
        actor=None,
        actor_name=(username or "")[:150],
        action="login.failure",
        summary=f"failed login for '{(username or '')[:100]}': {reason}",
        changes={"reason": reason},
    )


def lockout_reset(*, actor: User, username: str = "", ip: str = "") -> int:
    """An operator unlocks a user and/or an address that axes locked out."""
    from axes.utils import reset

    require_staff(actor, "unlock accounts")
    if not username and not ip:
        raise ValidationFailed("name a username or an address to unlock", field="username")
    with transaction.atomic():
        count = int(reset(ip=ip or None, username=username or None))
        audit_record(
            actor=actor,
            action="login.unlock",
            summary=f"unlocked {' and '.join(x for x in (username, ip) if x)} ({count} attempt records)",
            changes={"username": username, "ip": ip, "records": count},
        )
    return count


def token_login(
    *,
    request: HttpRequest,
    username: str,
    password: str,
    otp: str = "",
    name: str,
    scope: str,
    expires_in_days: int,
) -> tuple[ApiToken, str]:
    """A new token for a username and password (and the second factor, when the account
    has one): what `portalctl login` asks for. Returns the token and its text, shown once.

    The same checks as the web login, in the same order: django-axes counts the failures
    and refuses a locked-out user and address (LockedOut), a wrong password and an unknown
    name get the same LoginFailed, and an account with 2FA needs its code (`otp`: TOTP or
    a recovery code). Each outcome is audited; the token is scoped and always expires.
    """
    if expires_in_days not in LOGIN_TOKEN_DAYS:
        raise ValidationFailed(
            "a token for a password login expires in 7, 30, 90 or 365 days",
            field="expires_in_days",
        )
    username = (username or "").strip()
    user = authenticate(request, username=username, password=password)
    if getattr(request, "axes_locked_out", False):
        # Answered here in the API's shape; left set, AxesMiddleware would swap in its page.
        del request.axes_locked_out  # type: ignore[attr-defined]
        login_record_failure(username=username, reason="locked out")
        raise LockedOut(
            "too many failed logins: try again later, or ask an operator to unlock the account"
        )
    if user is None or not user.is_active:
        if user is None and directory_was_down(request):
            login_record_failure(username=username, reason="directory unavailable")
            raise UpstreamUnavailable(
                "the directory is not answering; try again in a minute",
                code=ErrorCode.DIRECTORY_UNAVAILABLE,
            )
        login_record_failure(
            username=username, reason="wrong username or password" if user is None else "disabled"
        )
        raise LoginFailed("wrong username or password")
    method = _second_factor(user, otp)
    login_record_success(user=user, method=method)
    return token_create(
        user=user, name=name, scope=scope, expires_in_days=expires_in_days, actor=user
    )


def _second_factor(user: User, otp: str) -> str:
    """How the user proved who they are (for the audit); raises LoginFailed without 2FA
    where it is needed."""
    if two_factor.otp_enrolled(user):
        if not (otp or "").strip():
            raise LoginFailed(
                "this account uses two-factor authentication: send the code from the "
                "authenticator app (or a recovery code) as otp",
                code=ErrorCode.OTP_REQUIRED,
            )
        if two_factor.otp_verify(user=user, code=otp) is None:
            login_record_failure(username=user.get_username(), reason="wrong 2FA code")
            raise LoginFailed(
                "that two-factor code is not right (or came too soon after a wrong one)",
                code=ErrorCode.OTP_INVALID,
            )
        return "API token: password + 2FA"
    if two_factor.otp_required(user):
        # Not a code to ask for: there is none yet (a client would prompt in vain).
        raise PermissionDenied(
            "this account must set up two-factor authentication in the portal first "
            "(/accounts/2fa/)",
            code=ErrorCode.OTP_SETUP_REQUIRED,
        )
    return "API token: password"
