"""Headless Chromium (the system's /usr/bin/chromium, never a downloaded one) driven by
Playwright's sync API against pytest-django's live server, on the real stack."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need_binary

# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
# between browser steps are still synchronous. (A file database, not an in-memory one:
# tests/testenv.py gives every run its own sqlite file.)
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
PASSWORD = "browser-test-password"


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    chromium = need_binary("chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any, live_server: Any) -> Iterator[Any]:
    context = browser.new_context(
        base_url=live_server.url,
        viewport={"width": 1280, "height": 900},
        permissions=["clipboard-read", "clipboard-write"],
    )
    context.set_default_timeout(15_000)
    pg = context.new_page()
    yield pg
    context.close()


@pytest.fixture
def screenshot_dir() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture
def local_login(settings: Any) -> None:
    """Local passwords for ordinary users in these tests (the break-glass backend's switch)."""
    settings.LOCAL_LOGIN_FOR_USERS = True


def make_user(username: str, **fields: Any) -> Any:
    from tests.factories import UserFactory

    user = UserFactory(username=username, **fields)
    user.set_password(PASSWORD)
    user.save()
    return user


def log_in(page: Any, username: str) -> None:
    """Through the real login page, as a person would."""
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/accounts/")
