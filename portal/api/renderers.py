from __future__ import annotations

from typing import Any

from rest_framework.renderers import BaseRenderer, JSONRenderer


class EventStreamRenderer(BaseRenderer):
    """Lets content negotiation accept `Accept: text/event-stream` for the SSE endpoints."""

    media_type = "text/event-stream"
    format = "sse"
    charset = "utf-8"

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None
    ) -> bytes:
        if data is None:
            return b""
        response = (renderer_context or {}).get("response")
        if isinstance(data, dict) and response is not None:
            # An error body ({"code", "message", "detail"}): JSON, as everywhere in the API.
            response["Content-Type"] = "application/json"
            return JSONRenderer().render(data)
        return str(data).encode()
