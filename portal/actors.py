"""Who a request acts as: the one way every face (GUI views, the API, the admin) gets it."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User

from .errors import PermissionDenied


def acting_user(request: Any) -> User:
    """The signed-in user behind a Django or DRF request.

    Views are behind `login_required`, the API behind its permission classes and the
    admin admits staff only, so this is never anonymous there; if it is, it is refused.
    """
    user = request.user
    if not isinstance(user, User) or not user.is_authenticated:
        raise PermissionDenied("authentication required")
    return user
