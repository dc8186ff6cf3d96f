"""What every page's navigation shows (templates/base.html)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject


def navigation(request: HttpRequest) -> dict[str, Any]:
    """For staff, how many resource requests wait (the badge in the navigation).

    Lazy: the COUNT runs only when a template shows it, and only for staff, so pages
    that do not extend base.html (the admin, the API docs) pay nothing.
    """

    def count() -> int:
        from auth.selectors import pending_request_count

        user = getattr(request, "user", None)
        return pending_request_count() if user is not None and user.is_staff else 0

    return {"pending_requests": SimpleLazyObject(count)}
