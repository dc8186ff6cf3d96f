"""`Authorization: Bearer <token>` for the REST API (scripts, portalctl, the GitHub Action)."""

from __future__ import annotations

from typing import Any

from rest_framework import authentication, exceptions
from rest_framework.request import Request

from portal.errors import TokenInvalid

from ..audit import client_address
from ..models import ApiToken
from ..tokens import token_authenticate


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """Authenticates as the token's user; `request.auth` is the ApiToken.

    A token is never subject to 2FA and can never do more than its user: every
    permission check still looks at the user, and `TokenScopePermission` narrows a
    read token to safe methods.
    """

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                "the Authorization header must be 'Bearer <token>'"
            )
        try:
            raw = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("malformed token") from None
        try:
            token = token_authenticate(raw, address=client_address(request._request))
        except TokenInvalid as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from None
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="api"'
