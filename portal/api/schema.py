"""Post-processing of the OpenAPI document (drf-spectacular hooks)."""

from __future__ import annotations

from typing import Any

QUERY_ERROR = {
    "description": "Invalid query parameter (a filter value, `page_size`, ...): "
    "field errors in `detail`.",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}


def document_query_errors(result: dict[str, Any], generator: Any, **kwargs: Any) -> dict[str, Any]:
    """Every operation that reads query parameters may answer 400 with the error body:
    filters and pages are validated, never ignored or crashed on."""
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            if any(p.get("in") == "query" for p in operation.get("parameters", [])):
                operation["responses"].setdefault("400", QUERY_ERROR)
    return result
