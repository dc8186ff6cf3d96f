"""The pages on a phone and on a desktop, in real Chromium (issue #12, item 9): the dashboard
and a container's page hold a 63-letter hostname without sideways scrolling, the token
form's choices stay on one line, the icon is served, and staff see the requests that wait.
A screenshot per page and viewport goes to test-artifacts/screenshots/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from containers.models import Container
from containers.resource_requests import resource_request_create
from tests.conftest import wait_job
from tests.functional.browser.conftest import assert_fits, log_in, make_user

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.usefixtures("transactional_db", "local_login"),
]

# The longest hostname there is, in one piece (no hyphen to break at), and one with hyphens.
SOLID = ("longhostname" * 6)[:63]
HYPHENATED = "a-very-long-hostname-for-a-container-that-fills-all-63-letters1"
VIEWPORTS = {"phone": (390, 844), "desktop": (1280, 900)}


@pytest.fixture(params=list(VIEWPORTS), ids=list(VIEWPORTS))
def viewport(request: Any) -> tuple[str, int, int]:
    width, height = VIEWPORTS[request.param]
    return request.param, width, height


def test_the_pages_fit_a_phone_with_the_longest_hostname(
    browser: Any,
    live_server: Any,
    cluster: Any,
    worker: Any,
    screenshot_dir: Path,
    viewport: tuple[str, int, int],
) -> None:
    from containers import services

    name, width, height = viewport
    # Staff see every column (the owner too) and the badge; they own the long ones here.
    stella = make_user("stella", is_staff=True)
    template = cluster.templates.get()
    for hostname in ("web", HYPHENATED, SOLID):
        wait_job(services.container_create(owner=stella, hostname=hostname, template=template).pk)
    resource_request_create(
        user=make_user("walt"), kind="quota", reason="for a course project", limits={"max_cores": 8}
    )
    long_one = Container.objects.get(hostname=SOLID)

    context = browser.new_context(
        base_url=live_server.url, viewport={"width": width, "height": height}
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        log_in(page, "stella")  # and it lands on the container list

        expect(page.locator(f'tr[data-hostname="{SOLID}"]')).to_be_visible()
        expect(page.locator("h1")).to_have_text("All containers")
        badge = page.locator("[data-pending-requests]")
        expect(badge).to_be_visible()
        expect(badge.locator(".badge")).to_have_text("1")
        assert_fits(page)
        # Each hostname is there whole, on screen, however it wraps.
        for hostname in (SOLID, HYPHENATED):
            link = page.locator(f'tr[data-hostname="{hostname}"] td').first.get_by_role("link")
            assert link.inner_text().replace("\n", "") == hostname
            box = link.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
        page.screenshot(path=str(screenshot_dir / f"layout-dashboard-{name}.png"), full_page=True)

        # The icon: linked by the page, served from here, an SVG.
        href = page.locator('link[rel="icon"]').get_attribute("href")
        assert href == "/static/portal/favicon.svg"
        icon = page.request.get(href)
        assert icon.status == 200 and icon.headers["content-type"].startswith("image/svg+xml")

        page.goto(f"/containers/{long_one.pk}/")
        expect(page.locator("h1")).to_contain_text(SOLID)
        expect(page.locator("[data-job-events]")).to_have_attribute("data-job-final", "succeeded")
        assert_fits(page)
        expect(page.locator("dl.facts time")).to_contain_text("UTC")
        page.screenshot(path=str(screenshot_dir / f"layout-container-{name}.png"), full_page=True)

        # The token form: each choice of scope on one line.
        page.goto("/accounts/tokens/")
        for choice in page.locator("label.choice").all():
            lines = choice.evaluate(
                "(el) => el.getBoundingClientRect().height"
                " / parseFloat(getComputedStyle(el).lineHeight)"
            )
            assert lines < 1.5, (choice.inner_text(), lines)
        assert_fits(page)
        page.screenshot(path=str(screenshot_dir / f"layout-tokens-{name}.png"), full_page=True)

        # Logging out says so.
        page.get_by_role("button", name="Log out").click()
        page.wait_for_url("**/accounts/login/")
        expect(page.locator(".messages")).to_have_text("You are logged out.")
    finally:
        context.close()
