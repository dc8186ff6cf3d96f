"""The audit log: one `audit_record` call in each service that makes an important write.

The request's client address is taken from a context variable that
`auth.middleware.AuditContextMiddleware` sets for the duration of a request, so
services need no request argument; work done by a worker has no address.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from .models import AuditEntry

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User
    from django.http import HttpRequest

log = logging.getLogger(__name__)

_address: contextvars.ContextVar[str | None] = contextvars.ContextVar("audit_address", default=None)

# Keys whose values never go into an audit entry, whatever a caller passes.
SECRET_KEYS = frozenset({"password", "token", "secret", "token_secret", "key", "code", "codes"})


def client_address(request: HttpRequest) -> str | None:
    """The client's address, as django-axes sees it (the same proxy settings)."""
    try:
        from axes.helpers import get_client_ip_address

        address = get_client_ip_address(request)
    except Exception:  # an unparsable header must not break the request
        address = request.META.get("REMOTE_ADDR")
    return str(address) if address else None


@contextlib.contextmanager
def request_address(address: str | None) -> Iterator[None]:
    token = _address.set(address)
    try:
        yield
    finally:
        _address.reset(token)


def current_address() -> str | None:
    return _address.get()


def _clean(changes: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in (changes or {}).items():
        if key.lower() in SECRET_KEYS:
            continue
        if isinstance(value, models.Model):
            value = str(value)
        out[key] = value
    return out


def audit_record(
    *,
    actor: User | AnonymousUser | None,
    action: str,
    obj: models.Model | None = None,
    summary: str = "",
    changes: dict[str, Any] | None = None,
    actor_name: str = "",
    address: str | None = None,
    object_type: str = "",
    object_id: str = "",
    object_repr: str = "",
) -> AuditEntry:
    """Write one audit entry. `action` is `<thing>.<verb>`, e.g. `container.delete`."""
    user = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or str(obj.pk)
        object_repr = object_repr or str(obj)
    entry = AuditEntry(
        actor=user,  # type: ignore[misc]
        actor_name=(actor_name or (user.get_username() if user else ""))[:150],
        address=address or current_address(),
        action=action[:64],
        object_type=object_type[:64],
        object_id=object_id[:64],
        object_repr=object_repr[:200],
        summary=summary[:500],
        changes=_clean(changes),
    )
    entry.save(force_insert=True)
    return entry


def audit_prune(
    *, days: int | None = None, now: datetime | None = None, dry_run: bool = False
) -> int:
    """Delete entries older than the retention (AUDIT_RETENTION_DAYS); returns how many
    (with `dry_run`, how many it would)."""
    keep = settings.AUDIT_RETENTION_DAYS if days is None else days
    if keep <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=keep)
    old = AuditEntry.objects.filter(created_at__lt=cutoff)
    if dry_run:
        return old.count()
    deleted, _ = old.delete()
    if deleted:
        log.info("pruned %d audit entries older than %d days", deleted, keep)
    return deleted
