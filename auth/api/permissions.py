"""What a token's scope allows: `read` tokens only make safe (read-only) requests."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from portal.errors import ErrorCode

from ..models import ApiToken, TokenScope


class TokenScopePermission(BasePermission):
    """Passes session and anonymous requests through (other classes decide those); a
    read-scoped token may only GET, HEAD and OPTIONS."""

    message = "this token is read-only; create a write token for changes"
    code = ErrorCode.TOKEN_SCOPE

    def has_permission(self, request: Request, view: Any) -> bool:
        token = request.auth
        if not isinstance(token, ApiToken):
            return True
        if request.method in SAFE_METHODS:
            return True
        return token.scope == TokenScope.WRITE

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        return self.has_permission(request, view)


class TokenManagementPermission(BasePermission):
    """Tokens are managed from a signed-in session. A request authenticated by a token
    may only see itself and revoke itself (a CLI's logout); it may never create a token,
    so a short-lived or read-only token cannot mint a longer-lived or wider one.

    Used instead of TokenScopePermission on the token endpoints: it is stricter for every
    method but DELETE of the token itself, which a read token may do too."""

    message = (
        "API tokens are created and managed from a signed-in session (the profile page); "
        "a token may only see and revoke itself"
    )
    code = ErrorCode.TOKEN_NEEDS_SESSION

    def has_permission(self, request: Request, view: Any) -> bool:
        if not isinstance(request.auth, ApiToken):
            return True
        return getattr(view, "action", None) in ("list", "retrieve", "destroy")

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        token = request.auth
        return not isinstance(token, ApiToken) or obj.pk == token.pk
