"""Content-Security-Policy (issue #10, item 11): every page sends it, and no template
holds what it forbids (inline script, inline event handlers, inline style).
tests/functional/browser/test_csp.py loads the pages in Chromium and counts violations."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from tests.factories import UserFactory, make_site

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
REQUIRED = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'self'",
    "frame-ancestors": "'none'",
    "form-action": "'self'",
}

# <script> with a body (anything but whitespace before </script>), or without src.
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>|<script[^>]*>\s*[^<\s]", re.I)
HANDLER = re.compile(r"""\son[a-z]+\s*=\s*["'{]""", re.I)  # onclick="...", onload='...'
INLINE_STYLE = re.compile(r"""<style\b|\sstyle\s*=\s*["'{]""", re.I)
JS_URL = re.compile(r"""["']\s*javascript:""", re.I)


def policy(response: Any) -> dict[str, str]:
    header = response["Content-Security-Policy"]
    return {
        part.split()[0]: " ".join(part.split()[1:])
        for part in (p.strip() for p in header.split(";"))
        if part
    }


def test_templates_hold_no_inline_script_handler_or_style() -> None:
    files = sorted(TEMPLATES.rglob("*.html"))
    assert len(files) > 15
    found = [
        f"{path.relative_to(TEMPLATES)}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)!r}"
        for path in files
        for text in [path.read_text()]
        for pattern in (INLINE_SCRIPT, HANDLER, INLINE_STYLE, JS_URL)
        for m in pattern.finditer(text)
    ]
    assert found == []


@pytest.mark.parametrize(
    "bad",
    [
        "<script>alert(1)</script>",
        "<script type='module'>x()</script>",
        '<button onclick="go()">',
        "<a href='javascript:go()'>",
        '<p style="color:red">',
        "<style>p{}</style>",
    ],
)
def test_the_scan_finds_what_it_looks_for(bad: str) -> None:
    assert any(p.search(bad) for p in (INLINE_SCRIPT, HANDLER, INLINE_STYLE, JS_URL))


@pytest.mark.django_db
def test_every_page_sends_the_policy(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from containers import services

    # No Celery message at all: a test that runs before the worker fixture would otherwise
    # bind the app's producer to the default broker for the rest of the session.
    monkeypatch.setattr("containers.tasks.enqueue_job", lambda job_id: None)
    monkeypatch.setattr("networking.services.enqueue_apply", lambda *a, **k: None)
    site = make_site(None)
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    job = services.container_create(owner=root, hostname="web", template=site.templates.get())
    client = Client()
    login = policy(client.get("/accounts/login/"))
    # The login form's answer may redirect on to a route host (docs/gateway.md): its
    # form-action names the gateway's origins besides 'self', and nothing else changes.
    assert login.pop("form-action").startswith("'self' https://*.")
    assert {k: login.get(k) for k in REQUIRED if k != "form-action"} == {
        k: v for k, v in REQUIRED.items() if k != "form-action"
    }
    client.force_login(root)
    pages = [
        "/",
        "/containers/new/",
        f"/containers/{job.container.pk}/",
        "/accounts/",
        "/accounts/ssh-keys/",
        "/accounts/tokens/",
        "/accounts/requests/",
        "/accounts/2fa/",
        "/api/v1/docs/",
        "/admin/",
        "/admin/containers/container/",
        f"/admin/containers/container/{job.container.pk}/change/",
    ]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        got = policy(response)
        assert {k: got.get(k) for k in REQUIRED} == REQUIRED, url
    # Redoc builds its styles at run time: its page alone may use inline style, never script.
    redoc = policy(client.get("/api/v1/redoc/"))
    assert redoc["script-src"] == "'self'" and "'unsafe-inline'" in redoc["style-src"]
