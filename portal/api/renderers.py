from __future__ import annotations

from typing import Any

import orjson
from rest_framework import renderers
from rest_framework.utils import encoders

# orjson writes dates and times its own way (microseconds where DRF writes milliseconds):
# they go to DRF's encoder, as do dataclasses (DRF refuses them). Dict keys that are not
# strings are written as json.dumps writes them.
_OPTIONS = (
    orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_NON_STR_KEYS
)
_LINE_SEPARATORS = (b"\xe2\x80\xa8", b"\xe2\x80\xa9")  # U+2028, U+2029 in UTF-8


class JSONRenderer(renderers.JSONRenderer):
    """DRF's JSON, written by orjson: the same bytes, in a tenth of the time (a page of
    1,000 containers took 10 ms with json.dumps; docs/performance.md).

    DRF's own renderer still writes what orjson cannot or should not: an indented
    response (`Accept: application/json; indent=4`), and anything orjson refuses (an
    integer beyond 64 bits, an object DRF's encoder does not know: DRF then says what).
    One difference is left: a NaN or an infinity, which DRF refuses, is written `null`."""

    _encoder = encoders.JSONEncoder()

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Any = None,
    ) -> bytes:
        if data is None:
            return b""
        if self.get_indent(accepted_media_type or "", renderer_context or {}) is not None:
            return super().render(data, accepted_media_type, renderer_context)
        try:
            out = orjson.dumps(data, default=self._encoder.default, option=_OPTIONS)
        except orjson.JSONEncodeError:
            return super().render(data, accepted_media_type, renderer_context)
        # DRF escapes these two so that the JSON is also valid JavaScript.
        if _LINE_SEPARATORS[0] in out or _LINE_SEPARATORS[1] in out:
            out = out.replace(_LINE_SEPARATORS[0], b"\\u2028")
            out = out.replace(_LINE_SEPARATORS[1], b"\\u2029")
        return out


class EventStreamRenderer(renderers.BaseRenderer):
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
