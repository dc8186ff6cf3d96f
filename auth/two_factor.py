"""Two-factor authentication: TOTP enrolment, recovery codes, the proof asked before a 2FA
change, and checking a code at login (the small pieces: auth/otp.py).

Keyword-only, typed, atomic, domain errors only; each write records its audit entry here.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction

from portal.errors import ErrorCode, InvalidState, NotFound, PermissionDenied, ValidationFailed

from .audit import audit_record
from .models import AuthenticatorDevice, RecoveryCode, RecoveryCodeDevice
from .otp import hash_recovery_code, new_recovery_code

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from django.http import HttpRequest

log = logging.getLogger(__name__)

# A session alone does not change 2FA: turning it off, new recovery codes and a new device
# each need proof of the person (the current code, a recovery code, or the password).
PROOF_FIELD = "proof"
_RECOVERY_SHAPE = re.compile(r"^[a-z0-9]{4}-?[a-z0-9]{4}-?[a-z0-9]{4}$")


def otp_required(user: User) -> bool:
    return bool(settings.OTP_REQUIRED_FOR_STAFF and getattr(user, "is_staff", False))


def otp_enrolled(user: User) -> bool:
    return AuthenticatorDevice.objects.filter(user=user, confirmed=True).exists()


def _proof_by_code(user: User, proof: str) -> str:
    """The kind of 2FA code `proof` is, if it is a valid one ('' if not); a code that is
    tried is used up as at login (a TOTP step once, a recovery code for good)."""
    compact = proof.strip().replace(" ", "")
    if compact.isdigit() and len(compact) <= 8:
        with transaction.atomic():
            for device in AuthenticatorDevice.objects.select_for_update().filter(
                user=user, confirmed=True
            ):
                if device.verify_token(compact):
                    return "TOTP code"
    elif _RECOVERY_SHAPE.fullmatch(compact.lower()):  # a password is not spent on the codes
        with transaction.atomic():
            for rdevice in RecoveryCodeDevice.objects.select_for_update().filter(user=user):
                if rdevice.verify_token(compact):
                    return "recovery code"
    return ""


def confirm_identity(*, user: User, proof: str, request: HttpRequest, doing: str) -> str:
    """Check that the holder of this session is the user, before a 2FA change.

    The current TOTP code, a recovery code, or the account password (through the
    authentication backends: the directory, or a break-glass local password). A failure
    is audited and counts toward django-axes' lockout like a failed login; while locked
    out nothing is tried. Returns how the user proved it; raises ValidationFailed at the
    `proof` field (or marks the request locked out, which the axes middleware answers).
    """
    from axes.handlers.proxy import AxesProxyHandler
    from django.contrib.auth import authenticate
    from django.contrib.auth.signals import user_login_failed

    from .backends import directory_was_down

    username = user.get_username()
    credentials = {settings.AXES_USERNAME_FORM_FIELD: username}
    proof = proof or ""
    if settings.AXES_ENABLED and not AxesProxyHandler.is_allowed(request, credentials):
        request.axes_locked_out = True  # type: ignore[attr-defined]
        method, reason = "", "locked out"
    else:
        method = _proof_by_code(user, proof) if otp_enrolled(user) else ""
        reason = ""
        if not method and proof:
            # authenticate() reports a failure to axes itself (user_login_failed).
            found = authenticate(request, username=username, password=proof)
            method = "password" if found is not None and found.pk == user.pk else ""
            if not method:
                reason = "directory unavailable" if directory_was_down(request) else "wrong"
        elif not method:
            user_login_failed.send(sender=__name__, credentials=credentials, request=request)
            reason = "empty"
    if method:
        return method
    audit_record(
        actor=user,
        action="2fa.confirm_failed",
        obj=user,
        summary=f"{username} gave a wrong code or password to {doing} ({reason})",
        changes={"reason": reason, "doing": doing},
    )
    if reason == "directory unavailable":
        message = "The directory is not answering, so the password cannot be checked; use a code."
    elif otp_enrolled(user):
        message = (
            "That is not right: give the current code of your app, a recovery code "
            "or your password."
        )
    else:
        message = "That is not right: give your password."
    raise ValidationFailed(message, code=ErrorCode.REAUTHENTICATION_FAILED, field=PROOF_FIELD)


def totp_enrol_start(*, user: User) -> AuthenticatorDevice:
    """A new, unconfirmed TOTP device (its QR code is shown until a first code confirms it).

    While another device is in use, the new one replaces it only when confirmed with proof
    (see totp_enrol_confirm), so starting changes nothing that works."""
    with transaction.atomic():
        AuthenticatorDevice.objects.filter(user=user, confirmed=False).delete()
        return AuthenticatorDevice.objects.create(
            user=user, name="authenticator app", confirmed=False
        )


def totp_enrol_confirm(
    *,
    user: User,
    device: AuthenticatorDevice,
    code: str,
    proof: str = "",
    request: HttpRequest | None = None,
) -> list[str]:
    """Confirm enrolment with a first code; returns fresh recovery codes (shown once).

    Replacing a device in use also needs proof (its code, a recovery code, the password)."""
    if device.user_id != user.pk or device.confirmed:
        raise NotFound("no enrolment in progress")
    method = ""
    if otp_enrolled(user):
        if request is None:
            raise PermissionDenied("replacing a device needs the user's proof")
        method = confirm_identity(
            user=user, proof=proof, request=request, doing="replace the device"
        )
    with transaction.atomic():
        if not device.verify_token((code or "").strip().replace(" ", "")):
            raise ValidationFailed(
                "that code is not right; check the clock of the device and try the next code",
                code=ErrorCode.INVALID_CODE,
                field="code",
            )
        AuthenticatorDevice.objects.filter(user=user, confirmed=True).exclude(pk=device.pk).delete()
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        codes = _new_recovery_codes(user)
        audit_record(
            actor=user,
            action="2fa.enable",
            obj=user,
            summary=f"{user.get_username()} turned on two-factor authentication"
            + (f" on a new device (confirmed by {method})" if method else ""),
            changes={"confirmed_by": method} if method else {},
        )
    return codes


def _new_recovery_codes(user: User) -> list[str]:
    RecoveryCodeDevice.objects.filter(user=user).delete()
    device = RecoveryCodeDevice.objects.create(user=user, name="recovery codes", confirmed=True)
    codes = [new_recovery_code() for _ in range(settings.OTP_RECOVERY_CODES)]
    RecoveryCode.objects.bulk_create(
        [RecoveryCode(device=device, code_hash=hash_recovery_code(c)) for c in codes]
    )
    return codes


def recovery_codes_regenerate(*, user: User, proof: str, request: HttpRequest) -> list[str]:
    if not otp_enrolled(user):
        raise InvalidState("turn on two-factor authentication first")
    method = confirm_identity(
        user=user, proof=proof, request=request, doing="make new recovery codes"
    )
    with transaction.atomic():
        codes = _new_recovery_codes(user)
        audit_record(
            actor=user,
            action="2fa.recovery_codes",
            obj=user,
            summary=f"{user.get_username()} made new recovery codes (the old ones stop working; "
            f"confirmed by {method})",
            changes={"confirmed_by": method},
        )
    return codes


def otp_disable(
    *, user: User, actor: User, proof: str = "", request: HttpRequest | None = None
) -> None:
    """Turn 2FA off: the user themself with proof (unless it is required of them), or staff
    (a reset, from the admin, whose own login is already checked)."""
    is_self = actor.pk == user.pk
    if not is_self and not getattr(actor, "is_staff", False):
        raise NotFound("no such user")
    if is_self and otp_required(user):
        raise PermissionDenied("two-factor authentication is required for staff accounts")
    method = ""
    if is_self:
        if request is None:
            raise PermissionDenied("turning two-factor authentication off needs the user's proof")
        method = confirm_identity(
            user=user, proof=proof, request=request, doing="turn two-factor authentication off"
        )
    with transaction.atomic():
        AuthenticatorDevice.objects.filter(user=user).delete()
        RecoveryCodeDevice.objects.filter(user=user).delete()
        audit_record(
            actor=actor,
            action="2fa.disable" if is_self else "2fa.reset",
            obj=user,
            summary=f"two-factor authentication turned off for {user.get_username()}",
            changes={"confirmed_by": method} if method else {},
        )


def otp_verify(*, user: User, code: str) -> Any:
    """The device that accepts the code (TOTP first, then a recovery code), or None."""
    code = (code or "").strip()
    if not code:
        return None
    with transaction.atomic():
        compact = code.replace(" ", "")
        if compact.isdigit() and len(compact) <= 8:
            for device in AuthenticatorDevice.objects.select_for_update().filter(
                user=user, confirmed=True
            ):
                if device.verify_token(compact):
                    return device
            return None
        for rdevice in RecoveryCodeDevice.objects.select_for_update().filter(user=user):
            if rdevice.verify_token(code):
                return rdevice
    return None
