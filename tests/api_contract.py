"""Checks every API response the tests see against the OpenAPI document the portal serves."""

from __future__ import annotations

from functools import cache
from typing import Any

from openapi_core import OpenAPI
from openapi_core.contrib.django import DjangoOpenAPIRequest, DjangoOpenAPIResponse


@cache
def openapi() -> OpenAPI:
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    schema["servers"] = [{"url": "http://testserver"}]
    return OpenAPI.from_dict(schema)


def check(response: Any) -> Any:
    """Validate a Django test client response (body, status, content type) against the schema."""
    request = response.wsgi_request
    if request.content_type == "multipart/form-data" and not hasattr(request, "_body"):
        # The view streamed the parts (an upload); only the response is checked here.
        request._body = b""
    openapi().validate_response(
        DjangoOpenAPIRequest(response.wsgi_request), DjangoOpenAPIResponse(response)
    )
    return response
