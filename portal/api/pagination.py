"""Pages of list endpoints: `page` (1, 2, ...) and `page_size` (1-MAX_PAGE_SIZE)."""

from __future__ import annotations

from typing import Any

from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request

from portal.errors import ValidationFailed

MAX_PAGE_SIZE = 200


class PagePagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE
    page_query_description = "A page number (from 1); a page past the end answers 404."
    page_size_query_description = (
        f"Results per page: a whole number from 1 to {MAX_PAGE_SIZE}; anything else answers 400."
    )

    def get_page_size(self, request: Request) -> int | None:
        # DRF quietly falls back to the default for a bad value; a script should hear of it.
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None or raw == "":
            return self.page_size
        digits = raw.isascii() and raw.isdigit() and len(raw) <= len(str(MAX_PAGE_SIZE))
        if not digits or not 1 <= int(raw) <= MAX_PAGE_SIZE:
            raise ValidationFailed(
                f"page_size is a whole number from 1 to {MAX_PAGE_SIZE}", field="page_size"
            )
        return int(raw)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"]["minimum"] = 1
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"]["maximum"] = MAX_PAGE_SIZE
        return parameters
