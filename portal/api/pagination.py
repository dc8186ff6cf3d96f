"""Pages of list endpoints: `page` (1, 2, ...) and `page_size` (1-MAX_PAGE_SIZE); the
container list also walks with a cursor (`cursor`, portal/api/keyset.py), with pages of
up to MAX_WALK_PAGE_SIZE."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db.models import QuerySet
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

from portal.api import keyset
from portal.errors import ValidationFailed

MAX_PAGE_SIZE = 200
# The container list's pages, numbered or walked with a cursor: a walk of 10,000
# containers is 10 requests (docs/performance.md).
MAX_WALK_PAGE_SIZE = 1000


def _page_size_help(largest: int) -> str:
    return f"Results per page: a whole number from 1 to {largest}; anything else answers 400."


class PagePagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE
    page_query_description = "A page number (from 1); a page past the end answers 404."
    page_size_query_description = _page_size_help(MAX_PAGE_SIZE)

    def get_page_size(self, request: Request) -> int | None:
        # DRF quietly falls back to the default for a bad value; a script should hear of it.
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None or raw == "":
            return self.page_size
        largest = self.max_page_size
        digits = raw.isascii() and raw.isdigit() and len(raw) <= len(str(largest))
        if not digits or not 1 <= int(raw) <= largest:
            raise ValidationFailed(
                f"page_size is a whole number from 1 to {largest}", field="page_size"
            )
        return int(raw)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"]["minimum"] = 1
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"]["maximum"] = self.max_page_size
        return parameters


class PageOrCursorPagination(PagePagination):
    """Numbered pages, as every list has them, or a cursor when `cursor` is given (empty
    for the first page): `{"next", "results"}` without a count, each page after the last
    one's position in the ordering (portal/api/keyset.py), so that a walk costs the same
    at its end as at its start and sees each row once while rows come and go.

    The view names its unique key (`cursor_key`): fields that no two listed rows share,
    appended to any ordering that lacks them, in both modes."""

    max_page_size = MAX_WALK_PAGE_SIZE
    page_size_query_description = _page_size_help(MAX_WALK_PAGE_SIZE)
    cursor_query_param = keyset.CURSOR_PARAM
    cursor_query_description = (
        "Walk the list with a cursor instead of page numbers: empty for the first page, "
        "then the `next` link's. Each page costs the same however far the walk has gone, "
        "and a walk sees every object that exists throughout exactly once, whatever is "
        "created or deleted meanwhile. Not with `page`."
    )

    def paginate_queryset(
        self, queryset: QuerySet[Any], request: Request, view: Any = None
    ) -> list[Any] | None:
        unique: tuple[str, ...] = getattr(view, "cursor_key", ())
        if not unique:
            raise ImproperlyConfigured(f"{type(view).__name__} names no cursor_key")
        self.keys = keyset.keyed_ordering(queryset, unique)
        queryset = queryset.order_by(*(str(k) for k in self.keys))
        raw = request.query_params.get(self.cursor_query_param)
        self.cursor_mode = raw is not None
        if not self.cursor_mode:
            return super().paginate_queryset(queryset, request, view)
        if self.page_query_param in request.query_params:
            raise ValidationFailed("page and cursor exclude each other", field="cursor")
        page_size = self.get_page_size(request) or self.max_page_size
        if raw:
            queryset = queryset.filter(
                keyset.after(self.keys, keyset.decode(raw, self.keys, queryset))
            )
        rows = list(queryset[: page_size + 1])
        self.next_link = None
        if len(rows) > page_size:  # one more than the page: there is a next one
            url = remove_query_param(request.build_absolute_uri(), self.page_query_param)
            position = keyset.encode(self.keys, rows[page_size - 1])
            self.next_link = replace_query_param(url, self.cursor_query_param, position)
        return rows[:page_size]

    def get_paginated_response(self, data: Any) -> Response:
        if not self.cursor_mode:
            return super().get_paginated_response(data)
        return Response({"next": self.get_next_link(), "results": data})

    def get_next_link(self) -> str | None:
        return self.next_link if self.cursor_mode else super().get_next_link()

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        paged = super().get_paginated_response_schema(schema)
        paged["required"] = ["results"]
        properties = paged["properties"]
        properties["count"]["description"] = "How many in all (numbered pages only)."
        properties["previous"]["description"] = "The page before (numbered pages only)."
        properties["next"]["description"] = (
            "The next page (null: this is the last): with `cursor`, the same query with the "
            "cursor after this page's last object."
        )
        return paged

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            *super().get_schema_operation_parameters(view),
            {
                "name": self.cursor_query_param,
                "required": False,
                "in": "query",
                "allowEmptyValue": True,
                "description": self.cursor_query_description,
                "schema": {"type": "string"},
            },
        ]
