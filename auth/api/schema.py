"""How the OpenAPI document (drf-spectacular) describes bearer-token authentication."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "auth.api.authentication.BearerTokenAuthentication"
    name = "bearerToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "cpt_<prefix>_<secret>",
            "description": "An API token made in the portal (profile page or API). "
            "Read-scoped tokens may only make GET, HEAD and OPTIONS requests.",
        }
