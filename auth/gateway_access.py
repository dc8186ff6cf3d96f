"""The gateway's own credential: how a browser proves who it is on a protected route.

Invariants (docs/gateway.md, "Protected routes"):
- The portal's session cookie is host-only on the portal's host: it is never sent to
  `*.<domain>`, so nothing a container serves can obtain it.
- A route host gets its own host-only `__Host-` cookie (GATEWAY_CREDENTIAL_COOKIE), minted by
  the portal for one user and one host, via a one-time code that lives GATEWAY_CODE_SECONDS.
  Only SHA-256 hashes of the code and the cookie are stored.
- The credential is good only for the gateway's auth check on the host it was minted for;
  the portal never reads it. It lapses after GATEWAY_CREDENTIAL_IDLE_SECONDS unused and
  GATEWAY_CREDENTIAL_MAX_SECONDS in all, and logging out of the portal revokes it.
- Before proxying, every occurrence of the credential (and of the portal's session cookie)
  is removed from the Cookie header by `strip_cookies`, a parser rather than a regex.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.utils import timezone

from .audit import audit_record
from .models import GatewayCredential

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


# -- the Cookie header ----------------------------------------------------------------------------
def cookie_pairs(header: str) -> list[tuple[str, str]]:
    """Every `name=value` of a Cookie header, in order, duplicates kept (HTTP/2 crumbs and
    several Cookie lines arrive joined with ';')."""
    pairs = []
    for piece in header.split(";"):
        name, sep, value = piece.strip().partition("=")
        if sep or name:
            pairs.append((name.strip(), value.strip()))
    return pairs


def strip_cookies(header: str, names: tuple[str, ...]) -> str:
    """The Cookie header without any cookie whose name is one of `names` (case-insensitive,
    whatever the spacing), the others kept as they came."""
    drop = {n.lower() for n in names}
    kept = []
    for piece in header.split(";"):
        piece = piece.strip()
        if piece and piece.partition("=")[0].strip().lower() not in drop:
            kept.append(piece)
    return "; ".join(kept)


def private_cookie_names() -> tuple[str, ...]:
    """The cookies no container may ever receive: the credential, and the portal's session
    under both its names (with and without `__Host-`, whichever this portal uses)."""
    session = settings.SESSION_COOKIE_NAME.removeprefix("__Host-")
    return (settings.GATEWAY_CREDENTIAL_COOKIE, session, f"__Host-{session}")


# -- minting, exchanging, checking, revoking -----------------------------------------------------
def credential_mint(*, user: User, host: str, session_key: str) -> str:
    """A one-time code for `user` on `host`; the browser carries it to the host's exchange."""
    now = timezone.now()
    # Rows long past their use go here, so the table never grows without bound.
    GatewayCredential.objects.filter(user=user, expires_at__lt=now - timedelta(days=1)).delete()
    code = secrets.token_urlsafe(32)
    GatewayCredential.objects.create(
        user=user,
        host=host.lower(),
        code_hash=_hash(code),
        portal_session_hash=_hash(session_key),
        created_at=now,
        expires_at=now + timedelta(seconds=settings.GATEWAY_CODE_SECONDS),
    )
    return code


def credential_exchange(*, code: str, host: str) -> str | None:
    """The cookie value for a fresh, unused code minted for this host; None otherwise.

    One conditional UPDATE: a code is exchanged once, however many requests race.
    """
    now = timezone.now()
    secret = secrets.token_urlsafe(32)
    updated = GatewayCredential.objects.filter(
        code_hash=_hash(code),
        host=host.lower(),
        secret_hash__isnull=True,
        revoked_at__isnull=True,
        expires_at__gt=now,
        user__is_active=True,
    ).update(
        secret_hash=_hash(secret),
        expires_at=now + timedelta(seconds=settings.GATEWAY_CREDENTIAL_IDLE_SECONDS),
    )
    return secret if updated == 1 else None


def credential_user(*, cookie_header: str, host: str) -> User | None:
    """The active user a valid credential in `cookie_header` names for `host`, or None.

    Use slides the idle expiry forward (one UPDATE per half idle period at most),
    never past GATEWAY_CREDENTIAL_MAX_SECONDS from the mint.
    """
    name = settings.GATEWAY_CREDENTIAL_COOKIE
    hashes = [_hash(v) for n, v in cookie_pairs(cookie_header) if n == name and v][:4]
    if not hashes:
        return None
    now = timezone.now()
    cred = (
        GatewayCredential.objects.select_related("user")
        .filter(
            secret_hash__in=hashes,
            host=host.lower(),
            revoked_at__isnull=True,
            expires_at__gt=now,
            user__is_active=True,
        )
        .first()
    )
    if cred is None:
        return None
    idle = timedelta(seconds=settings.GATEWAY_CREDENTIAL_IDLE_SECONDS)
    if cred.expires_at - now < idle / 2:
        limit = cred.created_at + timedelta(seconds=settings.GATEWAY_CREDENTIAL_MAX_SECONDS)
        GatewayCredential.objects.filter(pk=cred.pk).update(expires_at=min(now + idle, limit))
    return cred.user


def credentials_revoke_for_session(*, user: User, session_key: str | None) -> int:
    """At logout: every credential this portal session minted stops working at once."""
    if not session_key:
        return 0
    n = GatewayCredential.objects.filter(
        portal_session_hash=_hash(session_key), revoked_at__isnull=True
    ).update(revoked_at=timezone.now())
    if n:
        audit_record(
            actor=user,
            action="gateway.credentials_revoke",
            summary=f"{n} gateway credential(s) revoked at logout",
        )
    return n
