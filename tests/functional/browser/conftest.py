"""Pages for headless Chromium (the `browser` fixture of tests/conftest.py, the system's
/usr/bin/chromium, never a downloaded one) driven by
Playwright's sync API against pytest-django's live server, on the real stack."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

SCREENSHOTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "screenshots"
PASSWORD = "browser-test-password"


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
    page.wait_for_url(lambda url: urlsplit(url).path == "/")  # the container list


# Any element of the page's header or main past the viewport's right edge, and how wide the
# document scrolls: a page fits when neither goes past the viewport.
OVERFLOW = """() => {
  const width = window.innerWidth;
  const wide = [...document.querySelectorAll("main *, header *")]
    .filter((el) => el.getBoundingClientRect().right > width + 0.5)
    .map((el) => el.tagName.toLowerCase() + (el.className ? "." + el.className : ""));
  return {scroll: document.scrollingElement.scrollWidth, width, wide: wide.slice(0, 5)};
}"""


def assert_fits(page: Any) -> None:
    """No sideways scrolling: nothing in the page is wider than the viewport."""
    seen = page.evaluate(OVERFLOW)
    assert seen["scroll"] <= seen["width"], seen
    assert seen["wide"] == [], seen
