"""Logins: the audit of each one, and unlocking those axes locked out (django-auth-ldap and
axes do the checking; the second factor is auth/two_factor.py).

Keyword-only, typed, atomic, domain errors only; each write records its audit entry here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction

from portal.errors import ValidationFailed

from .audit import audit_record
from .selectors import require_staff

if TYPE_CHECKING:
    from django.contrib.auth.models import User


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
