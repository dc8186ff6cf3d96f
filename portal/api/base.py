from __future__ import annotations

from django.contrib.auth.models import User
from rest_framework.request import Request

from portal.errors import PermissionDenied

# The largest id a BigAutoField holds: an id filter beyond it is a 400.
ID_MAX = 2**63 - 1


def parse_id(raw: str) -> int | None:
    """A database id (0-ID_MAX) from a query string, or None. Digits only, and few of
    them, so int() never sees a sign, a space or Python's 4300-digit limit."""
    if not (raw.isascii() and raw.isdigit() and len(raw) <= len(str(ID_MAX))):
        return None
    value = int(raw)
    return value if value <= ID_MAX else None


def request_user(request: Request) -> User:
    """The authenticated user of a request (the permission classes have already checked)."""
    user = request.user
    if not isinstance(user, User) or not user.is_authenticated:
        raise PermissionDenied("authentication required")
    return user
