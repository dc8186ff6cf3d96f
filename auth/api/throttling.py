"""Throttling per API token (API_TOKEN_THROTTLE_RATE), on top of the per-user throttle, and
of password logins for a token per address (API_LOGIN_THROTTLE_RATE)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle

from ..models import ApiToken


class TokenRateThrottle(SimpleRateThrottle):
    scope = "token"

    def get_rate(self) -> str | None:
        rate: str | None = settings.API_TOKEN_THROTTLE_RATE or None
        return rate

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        token = request.auth
        if not isinstance(token, ApiToken):
            return None  # not a token request: the user and anon throttles apply
        return self.cache_format % {"scope": self.scope, "ident": token.pk}


class LoginRateThrottle(AnonRateThrottle):
    """Password logins for a token, per client address (axes locks out per user too)."""

    scope = "login"

    def get_rate(self) -> str | None:
        rate: str | None = settings.API_LOGIN_THROTTLE_RATE or None
        return rate
