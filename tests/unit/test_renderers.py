"""portal/api/renderers.py: orjson writes DRF's JSON to the byte, and DRF's own renderer
writes what orjson cannot."""

from __future__ import annotations

import datetime
import decimal
import uuid
import zoneinfo
from typing import Any

import pytest
from django.db.models import TextChoices
from django.utils.translation import gettext_lazy
from rest_framework.renderers import JSONRenderer as DRFRenderer

from portal.api.renderers import JSONRenderer


class Colour(TextChoices):
    RED = "red", "Red"


AWARE = datetime.datetime(2026, 12, 6, 7, 8, 9, 123456, tzinfo=datetime.UTC)

PAYLOADS: list[Any] = [
    {"results": [{"id": 1, "name": "c1", "cpu": 0.25, "mem": 2**40, "tags": []}], "next": None},
    {
        "utc": AWARE,
        "whole_second": AWARE.replace(microsecond=0),
        "paris": AWARE.astimezone(zoneinfo.ZoneInfo("Europe/Paris")),
        "naive": AWARE.replace(tzinfo=None),
        "date": AWARE.date(),
        "time": AWARE.time(),
        "duration": datetime.timedelta(minutes=90),
    },
    {"decimal": decimal.Decimal("1.50"), "uuid": uuid.UUID(int=7), "lazy": gettext_lazy("Yes")},
    {"choice": Colour.RED, 7: "an int key", "tuple": (1, 2), "set": {3}},
    {"separators": "a\u2028b\u2029c", "unicode": "café ✓", "escapes": 'quote " and \\ and \n'},
    {"huge": 2**70},  # beyond orjson's 64 bits: DRF writes it
    ["a list", 1, 1.5, True, None],
    "a string",
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_the_bytes_are_drfs(payload: Any) -> None:
    assert JSONRenderer().render(payload) == DRFRenderer().render(payload)


def test_an_indented_response_is_drfs() -> None:
    media_type = "application/json; indent=4"
    payload = PAYLOADS[0]
    out = JSONRenderer().render(payload, media_type)
    assert out == DRFRenderer().render(payload, media_type) and b"\n    " in out


def test_what_drf_refuses_is_refused() -> None:
    with pytest.raises(TypeError):
        JSONRenderer().render({"thing": object()})
    assert JSONRenderer().render(None) == b""


def test_nan_is_written_null_where_drf_refuses() -> None:
    # The one difference, documented in the renderer.
    assert JSONRenderer().render({"v": float("nan")}) == b'{"v":null}'
    with pytest.raises(ValueError):
        DRFRenderer().render({"v": float("nan")})
