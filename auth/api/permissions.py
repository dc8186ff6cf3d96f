"""What a token's scope allows: `read` tokens only make safe (read-only) requests."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from ..models import ApiToken, TokenScope


class TokenScopePermission(BasePermission):
    """Passes session and anonymous requests through (other classes decide those); a
    read-scoped token may only GET, HEAD and OPTIONS."""

    message = "this token is read-only; create a write token for changes"
    code = "token_scope"

    def has_permission(self, request: Request, view: Any) -> bool:
        token = request.auth
        if not isinstance(token, ApiToken):
            return True
        if request.method in SAFE_METHODS:
            return True
        return token.scope == TokenScope.WRITE

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        return self.has_permission(request, view)
