"""ReDoc's bundle as the portal serves it (portal/api/redoc.py): the sidecar's, less the
logo it would fetch from Redocly's CDN (issue #12, item 12; the browser side is in
tests/functional/browser/test_forms.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

from portal.api.redoc import BLANK_IMAGE, BUNDLE, FOREIGN_LOGO

pytestmark = pytest.mark.django_db


def test_the_bundle_is_served_without_the_cdn_logo() -> None:
    original = Path(str(finders.find(BUNDLE))).read_text(encoding="utf-8")
    # If an upgrade of drf-spectacular-sidecar moves the logo, this says so first.
    assert original.count(FOREIGN_LOGO) == 1
    response = Client().get("/api/v1/redoc/redoc.standalone.js")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    body = response.content.decode()
    assert "cdn.redoc.ly" not in body and BLANK_IMAGE in body
    assert len(body) == len(original) - len(FOREIGN_LOGO) + len(BLANK_IMAGE)
    again = Client().get(
        "/api/v1/redoc/redoc.standalone.js", headers={"If-None-Match": response["ETag"]}
    )
    assert again.status_code == 304 and again.content == b""


def test_the_redoc_page_uses_the_served_bundle() -> None:
    from tests.factories import UserFactory

    client = Client()
    client.force_login(UserFactory(username="reader"))
    page = client.get("/api/v1/redoc/").content.decode()
    assert '<script src="/api/v1/redoc/redoc.standalone.js"></script>' in page
    assert "https://" not in page
