"""ReDoc, offline: the sidecar's bundle, served less the one thing it loads from elsewhere.

The standalone bundle draws Redocly's logo in its sidebar footer from Redocly's CDN; the
portal loads nothing from other origins (and the CSP would block it), so the copy served
here names a blank image instead. Everything else comes from drf-spectacular-sidecar
as installed, like Swagger UI's files.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from django.contrib.staticfiles import finders
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.views.decorators.http import require_GET
from drf_spectacular.views import SpectacularRedocView

BUNDLE = "drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js"
FOREIGN_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
# A 1x1 transparent SVG: the footer keeps its link text, and nothing is fetched.
BLANK_IMAGE = (
    "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='1' height='1'/%3E"
)


@cache
def bundle() -> tuple[bytes, str]:
    """The bundle as served, and its ETag."""
    found = finders.find(BUNDLE)
    if not found or isinstance(found, list):
        raise FileNotFoundError(f"{BUNDLE} is not installed (drf-spectacular-sidecar)")
    body = Path(found).read_text(encoding="utf-8").replace(FOREIGN_LOGO, BLANK_IMAGE).encode()
    return body, f'"{hashlib.sha256(body).hexdigest()[:32]}"'


@require_GET
def redoc_bundle(request: HttpRequest) -> HttpResponse:
    body, etag = bundle()
    if request.headers.get("If-None-Match") == etag:
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(body, content_type="text/javascript; charset=utf-8")
    response["ETag"] = etag
    response["Cache-Control"] = "public, max-age=86400"
    return response


class OfflineRedocView(SpectacularRedocView):
    """drf-spectacular's ReDoc page, with the bundle above."""

    @staticmethod
    def _redoc_standalone() -> str:
        return reverse("api:redoc-bundle")
