"""Login (LDAP password, then the TOTP code where enrolled), logout, 2FA enrolment.

Thin: authentication is django-auth-ldap's and axes', the writes are in services.
"""

from __future__ import annotations

import time
from base64 import b32encode
from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

import django_otp
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import authenticate, login, logout
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from containers import resource_requests as requests_service
from containers import selectors as container_selectors
from networking.selectors import gateway_origins
from portal.actors import acting_user
from portal.errors import PortalError

from . import logins, notifications, selectors, sshkeys
from . import tokens as auth_tokens
from . import two_factor as twofa
from .audit import audit_record
from .backends import directory_was_down
from .forms import (
    LoginForm,
    NotificationsForm,
    OtpCodeForm,
    OtpConfirmForm,
    OtpProofForm,
    OtpReplaceForm,
    QuotaRequestForm,
    SshKeyForm,
    TokenForm,
)
from .gateway_access import credentials_revoke_for_session
from .models import (
    AuthenticatorDevice,
    RequestKind,
)
from .otp import qr_svg

PENDING = "accounts_otp_pending"


def _next_url(request: HttpRequest, fallback: str = "") -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return fallback or settings.LOGIN_REDIRECT_URL


def _finish_login(
    request: HttpRequest, user: Any, *, device: Any = None, method: str, next_url: str = ""
) -> HttpResponse:
    next_url = next_url or _next_url(request)
    login(request, user, backend=user.backend)
    if device is not None:
        django_otp.login(request, device)
    logins.login_record_success(user=user, method=method)
    if twofa.otp_required(user) and not twofa.otp_enrolled(user):
        messages.warning(request, "Staff accounts must set up two-factor authentication.")
        return redirect(f"{reverse('accounts:2fa')}?required=1")
    return redirect(next_url)


def _gateway_form_action(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The login forms' answers redirect on to a route host (`/gateway/login` sends the
    browser back where it came from), and browsers hold every redirect of a form's
    submission to `form-action`: allow the gateway's origins on these pages."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        response._csp_update = {"form-action": gateway_origins()}  # type: ignore[attr-defined]
        return response

    return wrapped


@sensitive_post_parameters("password")
@csrf_protect
@never_cache
@require_http_methods(["GET", "POST"])
@_gateway_form_action
def login_view(request: HttpRequest) -> HttpResponse:
    notice = ""
    if request.user.is_authenticated and request.method == "GET":
        target = request.GET.get("next", "")
        safe = url_has_allowed_host_and_scheme(
            target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        )
        needs_staff = target.startswith(reverse("admin:index"))
        if not safe or not target:
            return redirect(settings.LOGIN_REDIRECT_URL)
        if not needs_staff or request.user.is_staff:
            return redirect(target)  # already allowed there: no second login
        # Sent here by the admin, which wants a staff account: offer another login
        # rather than bouncing back and forth.
        notice = (
            f"You are logged in as {request.user.get_username()}, which is not a staff "
            "account; the admin needs one. Log in with a staff account to continue."
        )
    form = LoginForm(request.POST or None)
    error = ""
    status = 200
    if request.method == "POST" and form.is_valid():
        username = form.cleaned_data["username"].strip()
        user = authenticate(request, username=username, password=form.cleaned_data["password"])
        if getattr(request, "axes_locked_out", False):
            logins.login_record_failure(username=username, reason="locked out")
            # AxesMiddleware turns this into the lockout page (HTTP 429).
            return render(request, "accounts/lockout.html", {"username": username}, status=429)
        if user is not None and not user.is_active:
            logins.login_record_failure(username=username, reason="account disabled")
            user, error, status = None, "This account is disabled.", 403
        elif user is None:
            down = directory_was_down(request)
            reason = "directory unavailable" if down else "wrong username or password"
            logins.login_record_failure(username=username, reason=reason)
            error = (
                "The directory is not answering; try again in a minute."
                if down
                else "Wrong username or password."
            )
            status = 401
        elif twofa.otp_enrolled(user):
            request.session[PENDING] = {
                "user": user.pk,
                "backend": getattr(user, "backend", ""),
                "at": time.time(),
                "next": _next_url(request),
            }
            return redirect("accounts:login-verify")
        else:
            return _finish_login(request, user, method="password")
    elif request.method == "POST":
        error = "Enter your username and password."
        status = 400
    return render(
        request,
        "accounts/login.html",
        {"form": form, "error": error, "notice": notice, "next": _next_url(request, fallback="")},
        status=status,
    )


@csrf_protect
@never_cache
@require_http_methods(["GET", "POST"])
@_gateway_form_action
def login_verify(request: HttpRequest) -> HttpResponse:
    pending = request.session.get(PENDING)
    if not pending or time.time() - float(pending.get("at", 0)) > settings.OTP_LOGIN_TIMEOUT:
        request.session.pop(PENDING, None)
        messages.info(request, "Log in again: the time to enter the code ran out.")
        return redirect("accounts:login")
    user = selectors.active_user(pending["user"])
    if user is None:
        request.session.pop(PENDING, None)
        return redirect("accounts:login")
    form = OtpCodeForm(request.POST or None)
    error, status = "", 200
    if request.method == "POST" and form.is_valid():
        device = twofa.otp_verify(user=user, code=form.cleaned_data["code"])
        if device is not None:
            request.session.pop(PENDING, None)
            user.backend = pending["backend"]  # type: ignore[attr-defined]
            method = (
                "password + TOTP"
                if isinstance(device, AuthenticatorDevice)
                else "password + recovery code"
            )
            return _finish_login(
                request, user, device=device, method=method, next_url=pending.get("next") or ""
            )
        logins.login_record_failure(username=user.get_username(), reason="wrong 2FA code")
        error, status = "That code is not right (or came too soon after a wrong one).", 401
    return render(
        request,
        "accounts/login_verify.html",
        {"form": form, "error": error, "username": user.get_username()},
        status=status,
    )


@require_http_methods(["GET", "POST"])
def logout_view(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        if request.user.is_authenticated:
            audit_record(
                actor=request.user,
                action="logout",
                obj=request.user,
                summary=f"{request.user.get_username()} logged out",
            )
            # The gateway credentials this session minted end with it.
            credentials_revoke_for_session(
                user=request.user, session_key=request.session.session_key
            )
        logout(request)
        messages.success(request, "You are logged out.")  # shown by the login page
        return redirect(settings.LOGOUT_REDIRECT_URL)
    return render(request, "accounts/logout.html")


@login_required
def account(request: HttpRequest) -> HttpResponse:
    user = acting_user(request)
    quota = container_selectors.user_quota(user)
    rows = [
        ("Containers", quota.usage.containers, quota.limits["max_containers"]),
        ("Cores", quota.usage.cores, quota.limits["max_cores"]),
        ("Memory (MiB)", quota.usage.memory_mib, quota.limits["max_memory_mib"]),
        ("Swap (MiB)", quota.usage.swap_mib, quota.limits["max_swap_mib"]),
        ("Disk (GiB)", quota.usage.disk_gib, quota.limits["max_disk_gib"]),
        ("Routes (besides each container's name)", quota.usage.routes, quota.limits["max_routes"]),
        ("Published ports (besides SSH)", quota.usage.ports, quota.limits["max_ports"]),
    ]
    largest = [
        ("Cores", quota.limits["max_container_cores"]),
        ("Memory (MiB)", quota.limits["max_container_memory_mib"]),
        ("Swap (MiB)", quota.limits["max_container_swap_mib"]),
        ("Disk (GiB)", quota.limits["max_container_disk_gib"]),
        ("Routes", quota.limits["max_container_routes"]),
        ("Published ports", quota.limits["max_container_ports"]),
    ]
    return render(
        request,
        "accounts/account.html",
        {
            "quota": quota,
            "rows": rows,
            "largest": largest,
            "groups": sorted(user.groups.values_list("name", flat=True)),
            "has_2fa": twofa.otp_enrolled(user),
            "ssh_key_count": selectors.ssh_keys_of(user).count(),
            "token_count": selectors.tokens_of(user).filter(revoked_at__isnull=True).count(),
        },
    )


def _proof_error(form: Any, exc: PortalError) -> bool:
    """Show a PortalError at the form's field if it names one the form has."""
    field = str(exc.extra.get("field") or "")
    if field in form.fields:
        form.add_error(field, exc.message)
        return True
    return False


@sensitive_post_parameters("proof")
@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def two_factor(request: HttpRequest) -> HttpResponse:
    user = acting_user(request)
    codes: list[str] = []
    form = OtpProofForm()
    status = 200
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "start":
                twofa.totp_enrol_start(user=user)
                return redirect("accounts:2fa-enrol")
            if action in ("codes", "disable"):
                form = OtpProofForm(request.POST)
                if not form.is_valid():
                    status = 400
                elif action == "codes":
                    codes = twofa.recovery_codes_regenerate(
                        user=user, proof=form.cleaned_data["proof"], request=request
                    )
                    form = OtpProofForm()
                    messages.success(request, "New recovery codes; the old ones no longer work.")
                else:
                    twofa.otp_disable(
                        user=user, actor=user, proof=form.cleaned_data["proof"], request=request
                    )
                    messages.success(request, "Two-factor authentication is off.")
                    return redirect("accounts:2fa")
        except PortalError as exc:
            if not _proof_error(form, exc):
                messages.error(request, exc.message)
                return redirect("accounts:2fa")
            status = 400
    enrolled = twofa.otp_enrolled(user)
    remaining = selectors.recovery_codes_left(user)
    return render(
        request,
        "accounts/two_factor.html",
        {
            "enrolled": enrolled,
            "required": twofa.otp_required(user),
            "remaining": remaining,
            "codes": codes,
            "form": form,
        },
        status=status,
    )


@sensitive_post_parameters("proof", "code")
@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def two_factor_enrol(request: HttpRequest) -> HttpResponse:
    user = acting_user(request)
    device = selectors.unconfirmed_device(user)
    if device is None:
        device = twofa.totp_enrol_start(user=user)
    replacing = twofa.otp_enrolled(user)
    form_class = OtpReplaceForm if replacing else OtpConfirmForm
    form = form_class(request.POST or None)
    error, status = "", 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                codes = twofa.totp_enrol_confirm(
                    user=user,
                    device=device,
                    code=form.cleaned_data["code"],
                    proof=form.cleaned_data.get("proof", ""),
                    request=request,
                )
            except PortalError as exc:
                if not _proof_error(form, exc):
                    error = exc.message
            else:
                device.refresh_from_db()
                django_otp.login(request, device)
                return render(
                    request, "accounts/recovery_codes.html", {"codes": codes, "new": True}
                )
    return render(
        request,
        "accounts/two_factor_enrol.html",
        {
            "form": form,
            "error": error,
            "replacing": replacing,
            "qr": qr_svg(device.config_url),
            "secret": b32encode(device.bin_key).decode(),
        },
        status=status,
    )


# -- profile: SSH keys, API tokens, resource requests ------------------------------------------
# Thin: the services check and write; a PortalError is shown at the field it names.


def _field_error(form: Any, exc: PortalError, *, aliases: dict[str, str] | None = None) -> None:
    field = str(exc.extra.get("field") or "")
    field = (aliases or {}).get(field, field)
    form.add_error(field if field in form.fields else None, exc.message)


@login_required
@require_http_methods(["GET", "POST"])
def ssh_keys(request: HttpRequest) -> HttpResponse:
    user = acting_user(request)
    form = SshKeyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            row = sshkeys.ssh_key_add(
                user=user, key=form.cleaned_data["key"], name=form.cleaned_data["name"]
            )
        except PortalError as exc:
            _field_error(form, exc, aliases={"ssh_public_keys": "key"})
        else:
            messages.success(request, f"Added SSH key SHA256:{row.fingerprint}.")
            return redirect("accounts:ssh-keys")
    return render(
        request,
        "accounts/ssh_keys.html",
        {"form": form, "keys": list(selectors.ssh_keys_of(user))},
        status=400 if form.errors else 200,
    )


@login_required
@require_http_methods(["POST"])
def ssh_key_remove(request: HttpRequest, pk: int) -> HttpResponse:
    user = acting_user(request)
    key = selectors.own_ssh_key(user, pk)
    if key is None:
        raise Http404("no such SSH key")
    sshkeys.ssh_key_remove(key=key, actor=user)
    messages.success(request, f"Removed SSH key SHA256:{key.fingerprint}.")
    return redirect("accounts:ssh-keys")


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def tokens(request: HttpRequest) -> HttpResponse:
    user = acting_user(request)
    form = TokenForm(request.POST or None)
    new: dict[str, Any] | None = None
    if request.method == "POST" and form.is_valid():
        try:
            token, plain = auth_tokens.token_create(
                user=user,
                name=form.cleaned_data["name"],
                scope=form.cleaned_data["scope"],
                expires_in_days=form.expiry_days(),
            )
        except PortalError as exc:
            _field_error(form, exc)
        else:
            # Shown in this answer only (never_cache: no-store), never kept in the session:
            # session rows sit in the database, so a token parked there would be at rest.
            new = {"pk": token.pk, "token": plain}
            form = TokenForm()
    return render(
        request,
        "accounts/tokens.html",
        {
            "form": form,
            "tokens": list(selectors.tokens_of(user)),
            "new_token": new,
        },
        status=400 if form.errors else 200,
    )


@login_required
@require_http_methods(["POST"])
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    user = acting_user(request)
    token = selectors.own_token(user, pk)
    if token is None:
        raise Http404("no such token")
    auth_tokens.token_revoke(token=token, actor=user)
    messages.success(request, f"Revoked the token '{token.name}' ({token.prefix}…).")
    return redirect("accounts:tokens")


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def notification_settings(request: HttpRequest) -> HttpResponse:
    """Which notifications the user receives, and their webhook (its host only is shown)."""
    user = acting_user(request)
    kinds = notifications.notification_kinds_of(user)
    form = NotificationsForm(
        request.POST or None, initial={f"kind_{k}": on for k, on in kinds.items()}
    )
    if request.method == "POST" and form.is_valid():
        try:
            notifications.notification_settings_update(user=user, **form.update())  # type: ignore[arg-type]
        except PortalError as exc:
            _field_error(form, exc)
        else:
            messages.success(request, "Saved your notification settings.")
            return redirect("accounts:notifications")
    hook = notifications.webhook_of(user=user)
    return render(
        request,
        "accounts/notifications.html",
        {
            "form": form,
            "kind_fields": [form[f"kind_{k}"] for k in kinds],
            "webhook_host": urlsplit(hook.url).hostname if hook else None,
            "webhook_has_secret": bool(hook and hook.secret),
        },
        status=400 if form.errors else 200,
    )


@login_required
@require_http_methods(["GET", "POST"])
def resource_requests(request: HttpRequest) -> HttpResponse:
    user = acting_user(request)
    form = QuotaRequestForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            row = requests_service.resource_request_create(
                user=user,
                kind=RequestKind.QUOTA,
                reason=form.cleaned_data["reason"],
                limits=form.limits(),
            )
        except PortalError as exc:
            _field_error(form, exc)
        else:
            messages.success(request, f"Request #{row.pk} sent to staff.")
            return redirect("accounts:requests")
    mine = selectors.resource_requests_visible_to(user).filter(user=user).order_by("-created_at")
    return render(
        request,
        "accounts/requests.html",
        {
            "form": form,
            "limit_fields": [form[f] for f in QuotaRequestForm.LIMIT_FIELDS],
            "requests": list(mine[:50]),
        },
        status=400 if form.errors else 200,
    )


@login_required
@require_http_methods(["POST"])
def resource_request_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    user = acting_user(request)
    row = selectors.own_resource_request(user, pk)
    if row is None:
        raise Http404("no such request")
    try:
        requests_service.resource_request_cancel(request=row, actor=user)
    except PortalError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Request #{row.pk} cancelled.")
    return redirect("accounts:requests")


def admin_login(request: HttpRequest) -> HttpResponse:
    """The admin's login URL sends people to the portal's login, keeping `next`."""
    target = _next_url(request, fallback=reverse("admin:index"))
    return redirect(f"{reverse('accounts:login')}?{urlencode({'next': target})}")
