"""API tokens: made, shown once, stored as a hash, revoked, and checked on every request."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from portal.errors import InvalidState, NotFound, TokenInvalid, ValidationFailed

from .audit import audit_record
from .models import ApiToken, TokenScope

if TYPE_CHECKING:
    from django.contrib.auth.models import User

TOKEN_PREFIX = "cpt"
TOKEN_EXPIRY_DAYS = (7, 30, 90, 365, None)  # None: never


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_create(
    *,
    user: User,
    name: str,
    scope: str = TokenScope.READ,
    expires_in_days: int | None = 90,
    actor: User | None = None,
) -> tuple[ApiToken, str]:
    """Make a token; the returned text is the only time it is ever shown."""
    actor = actor or user
    if actor.pk != user.pk and not getattr(actor, "is_staff", False):
        raise NotFound("no such user")
    name = " ".join((name or "").split())
    if not name or len(name) > 100:
        raise ValidationFailed("a token needs a name of 1-100 characters", field="name")
    if scope not in TokenScope.values:
        raise ValidationFailed("scope is read or write", field="scope")
    if expires_in_days not in TOKEN_EXPIRY_DAYS:
        raise ValidationFailed("expiry is 7, 30, 90 or 365 days, or never", field="expires_in_days")
    if not user.is_active:
        raise InvalidState("the account is disabled")
    with transaction.atomic():
        live = ApiToken.objects.filter(user=user, revoked_at__isnull=True)
        if live.count() >= settings.API_TOKEN_MAX_PER_USER:
            raise ValidationFailed(
                f"at most {settings.API_TOKEN_MAX_PER_USER} tokens; revoke some first",
                field="name",
            )
        for _ in range(5):
            prefix = secrets.token_hex(4)
            if not ApiToken.objects.filter(prefix=prefix).exists():
                break
        secret = secrets.token_urlsafe(32)
        plain = f"{TOKEN_PREFIX}_{prefix}_{secret}"
        expires_at = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
        token = ApiToken.objects.create(
            user=user,
            name=name,
            prefix=prefix,
            token_hash=token_hash(plain),
            scope=scope,
            expires_at=expires_at,
        )
        audit_record(
            actor=actor,
            action="token.create",
            obj=token,
            summary=f"created {scope} token '{name}' ({prefix}…) for {user.get_username()}, "
            + (f"expires in {expires_in_days} days" if expires_in_days else "never expires"),
            changes={"scope": scope, "expires_in_days": expires_in_days, "prefix": prefix},
        )
    return token, plain


def token_revoke(*, token: ApiToken, actor: User) -> ApiToken:
    if token.user_id != actor.pk and not getattr(actor, "is_staff", False):
        raise NotFound("no such token")
    with transaction.atomic():
        updated = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        token.refresh_from_db()
        if updated:
            audit_record(
                actor=actor,
                action="token.revoke",
                obj=token,
                summary=f"revoked token '{token.name}' ({token.prefix}…) of {token.user.get_username()}",
                changes={"prefix": token.prefix},
            )
    return token


def tokens_prune(*, now: datetime | None = None, dry_run: bool = False) -> int:
    """Delete tokens that expired or were revoked API_TOKEN_RETENTION_DAYS ago (0: keep
    them); they can never be used again, and their creation and revocation are audited."""
    keep = settings.API_TOKEN_RETENTION_DAYS
    if keep <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=keep)
    gone = ApiToken.objects.filter(Q(expires_at__lt=cutoff) | Q(revoked_at__lt=cutoff))
    if dry_run:
        return gone.count()
    deleted, _ = gone.delete()
    return deleted


def token_authenticate(raw: str, *, address: str | None) -> ApiToken:
    """The token a bearer value names, if it is valid; records its last use."""
    parts = (raw or "").strip().split("_", 2)  # the secret itself may contain "_"
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not parts[1] or not parts[2]:
        raise TokenInvalid("malformed token")
    token = ApiToken.objects.select_related("user").filter(prefix=parts[1]).first()
    expected = token.token_hash if token else token_hash("x")
    if not hmac.compare_digest(expected, token_hash(raw.strip())) or token is None:
        raise TokenInvalid("invalid token")
    if token.revoked_at is not None:
        raise TokenInvalid("this token was revoked")
    if token.is_expired:
        raise TokenInvalid("this token has expired")
    if not token.user.is_active:
        raise TokenInvalid("the token's user is disabled")
    now = timezone.now()
    interval = timedelta(seconds=settings.API_TOKEN_LAST_USED_INTERVAL)
    if (
        token.last_used_at is None
        or now - token.last_used_at >= interval
        or (address and token.last_used_ip != address)
    ):
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now, last_used_ip=address)
        token.last_used_at, token.last_used_ip = now, address
    return token
