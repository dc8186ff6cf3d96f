"""The Content-Security-Policy in real Chromium: the main pages, the admin and the API
docs load and work with zero violations (issue #10, item 11)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import wait_job
from tests.functional.browser.conftest import log_in, make_user

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.usefixtures("transactional_db", "local_login"),
]

# Each violation is reported to the page as a `securitypolicyviolation` event; Chromium
# also logs it to the console. Both are collected.
WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.effectiveDirective} blocked ${e.blockedURI} at ${e.sourceFile}:${e.lineNumber}`);
});
"""


class Violations:
    def __init__(self, page: Any) -> None:
        self.page = page
        self.console: list[str] = []
        self.events: list[str] = []
        page.add_init_script(WATCH)
        page.on("console", self._on_console)

    def _on_console(self, message: Any) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            self.console.append(message.text)

    def visit(self, url: str) -> None:
        """Go to a page and collect the events of the page we leave."""
        self.collect()
        response = self.page.goto(url)
        assert response is not None and response.status == 200, url
        assert "default-src 'self'" in response.headers.get("content-security-policy", ""), url

    def collect(self) -> None:
        if self.page.url.startswith("http"):
            self.events += [
                f"{self.page.url}: {v}" for v in self.page.evaluate("window.__csp || []")
            ]

    def all(self) -> list[str]:
        self.collect()
        return self.events + self.console


def test_the_pages_work_with_zero_csp_violations(page: Any, cluster: Any, worker: Any) -> None:
    from containers import services

    root = make_user("root", is_staff=True, is_superuser=True)
    job = services.container_create(owner=root, hostname="web", template=cluster.templates.get())
    wait_job(job.pk)
    seen = Violations(page)

    seen.visit("/accounts/login/")
    log_in(page, "root")

    seen.visit("/")
    expect(page.get_by_role("link", name="web", exact=True)).to_be_visible()

    # The create form's live hostname check (fetch from app.js).
    seen.visit("/containers/new/")
    page.get_by_label("Hostname").fill("fresh")
    expect(page.locator("#hostname-check")).to_have_text("fresh is available")

    # A container page follows its job over the event stream (EventSource from app.js).
    seen.visit(f"/containers/{job.container.pk}/")
    expect(page.locator("[data-job-events]")).to_have_attribute("data-job-final", "succeeded")
    expect(page.locator(".log div").last).to_contain_text("Done")
    # Its copy buttons (a click handler in app.js, not an onclick attribute).
    page.locator("[data-copy]").first.click()
    expect(page.locator("[data-copy]").first).to_have_text("Copied")

    for url in ("/accounts/", "/accounts/ssh-keys/", "/accounts/tokens/", "/accounts/requests/"):
        seen.visit(url)
    seen.visit("/accounts/2fa/enrol/")
    expect(page.locator("figure.qr svg")).to_be_visible()

    # The API docs: Swagger UI starts from its own script URL and lists the operations.
    seen.visit("/api/v1/docs/")
    expect(page.locator(".opblock").first).to_be_visible()
    seen.visit("/api/v1/redoc/")
    expect(page.get_by_text(re.compile("Cluster Portal API")).first).to_be_visible()

    # The admin under the same policy: its scripts are files, its pages work.
    seen.visit("/admin/")
    expect(page.get_by_role("link", name="Containers").first).to_be_visible()
    seen.visit("/admin/containers/container/")
    page.locator("#changelist-search input[name=q]").fill("web")
    page.locator("#changelist-search input[type=submit]").click()
    expect(page.locator("#result_list")).to_contain_text("web")
    seen.visit(f"/admin/containers/container/{job.container.pk}/change/")
    seen.visit("/admin/auth/user/add/")
    expect(page.locator("#id_username")).to_be_visible()

    # Nothing blocked, not even Redoc's footer logo: the portal serves Redoc's bundle
    # without it (portal/api/redoc.py), so no page asks for anything from elsewhere.
    found = seen.all()
    assert found == [], "\n".join(found)
