from __future__ import annotations

from django.contrib.auth.models import User
from rest_framework.request import Request

from portal.errors import PermissionDenied


def request_user(request: Request) -> User:
    """The authenticated user of a request (the permission classes have already checked)."""
    user = request.user
    if not isinstance(user, User) or not user.is_authenticated:
        raise PermissionDenied("authentication required")
    return user
