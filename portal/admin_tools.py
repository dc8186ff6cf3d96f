"""Shared by the admin modules: who the operator is, and running a service per object."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from portal.errors import PortalError

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def operator(request: HttpRequest) -> User:
    """The staff user behind an admin request (the admin site only admits staff)."""
    return cast("User", request.user)


def run_each(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet[Any],
    fn: Callable[[Any], str],
) -> None:
    """Call a service per selected object; report each success or domain error."""
    for obj in queryset:
        try:
            text = fn(obj)
        except PortalError as exc:
            model_admin.message_user(request, f"{obj}: {exc.message}", messages.ERROR)
        else:
            model_admin.message_user(request, text, messages.SUCCESS)
