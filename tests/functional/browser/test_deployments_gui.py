"""The LaunchPad pages in real headless Chromium: a deployment row made in the database
(no deploy runs) is listed, its page shows its URL, state and live job, Extend works
through the page's form, and the runtime log panel shows what the API answers, with no
Content-Security-Policy violation on the way."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from tests.functional.browser.conftest import log_in, make_user
from tests.functional.browser.test_layout import assert_fits

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.usefixtures("transactional_db", "local_login"),
]

SHA = "3f2a9b1c0d4e5f60718293a4b5c6d7e8f9012345"
SECRET = "never-on-a-page"
WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.effectiveDirective} blocked ${e.blockedURI}`);
});
"""


@pytest.fixture
def quiet(no_jobs: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """No job runs and no gateway is applied: the rows are all the test needs."""
    monkeypatch.setattr("networking.services.enqueue_apply", lambda *a, **k: None)


def make_deployment(owner: Any) -> Any:
    from containers import services
    from containers.models import Deployment, DeploymentState, Job, JobStatus
    from tests.factories import make_site

    site = make_site(None)
    job = services.container_create(
        owner=owner, hostname="alice-shop-main", template=site.templates.get()
    )
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED, progress=100)
    job.log_entries.create(message="Container made")
    return Deployment.objects.create(
        owner=owner,
        repository="alice/shop",
        ref="main",
        name="alice-shop-main",
        container=job.container,
        commit=SHA,
        serving_commit=SHA,
        state=DeploymentState.LIVE,
        app={"start": "gunicorn app:app", "port": 8000},
        env=json.dumps({"SECRET_KEY": SECRET}),
        expires_at=timezone.now() + timedelta(days=2),
    )


def test_list_detail_extend_and_runtime_log(page: Any, quiet: None, screenshot_dir: Path) -> None:
    from containers.models import Deployment

    alice = make_user("alice")
    make_deployment(alice)
    page.add_init_script(WATCH)
    log_in(page, "alice")

    # The list, from the nav.
    page.get_by_role("link", name="Deployments", exact=True).click()
    expect(page).to_have_url(re.compile(r"/deployments/$"))
    row = page.locator('tr[data-deployment="alice-shop-main"]')
    expect(row.locator("[data-deployment-state]")).to_have_text("Live")
    expect(
        row.get_by_role("link", name="https://alice-shop-main.apps.example.test/")
    ).to_be_visible()
    expect(row).to_contain_text(SHA[:7])
    assert SECRET not in page.content()
    page.screenshot(path=str(screenshot_dir / "deployments.png"), full_page=True)

    # Its page: URL, state, env names only, the latest job followed live to its end.
    row.get_by_role("link", name="alice-shop-main", exact=True).click()
    expect(page).to_have_url(re.compile(r"/deployments/alice-shop-main/$"))
    expect(page.locator("h1 [data-deployment-state]")).to_have_text("Live")
    url = page.locator("[data-deployment-url]")
    expect(url.get_by_role("link")).to_have_attribute(
        "href", "https://alice-shop-main.apps.example.test/"
    )
    expect(page.locator(".env-names")).to_have_text("SECRET_KEY")
    assert SECRET not in page.content()
    box = page.locator("[data-job-events]")
    expect(box).to_have_attribute("data-job-final", "succeeded")
    expect(box.locator(".log")).to_contain_text("Container made")

    # Extend: a bad number comes back at its field, a good one moves the expiry.
    page.get_by_label("Keep it for (days from now)").fill("0")
    page.get_by_role("button", name="Extend").click()
    expect(page.locator("#days-error")).to_be_visible()
    page.get_by_label("Keep it for (days from now)").fill("10")
    page.get_by_role("button", name="Extend").click()
    expect(page).to_have_url(re.compile(r"/deployments/alice-shop-main/#expiry-h$"))
    expect(page.locator(".messages")).to_contain_text("alice-shop-main now expires in 10 days")
    expires = Deployment.objects.get().expires_at
    assert expires is not None and expires > timezone.now() + timedelta(days=9)

    # The runtime log: what the API answers (routed here: no app runs in this test).
    logs = "**/api/v1/deployments/alice-shop-main/logs/?lines=200"
    page.route(
        logs,
        lambda route: route.fulfill(
            json={"lines": ["Listening at: http://10.0.0.5:8000", "GET / 200"]}
        ),
    )
    page.route(
        logs + "&follow=1",
        lambda route: route.fulfill(
            status=200,
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
            body="retry: 60000\n\nevent: line\ndata: GET /health 200\n\n",
        ),
    )
    panel = page.locator("[data-runtime-log]")
    panel.get_by_role("button", name="Load the last 200 lines").click()
    expect(panel.locator(".log")).to_contain_text("Listening at: http://10.0.0.5:8000")
    expect(panel.locator("[data-runtime-status]")).to_have_text("The last 2 lines.")
    panel.get_by_role("button", name="Follow").click()
    expect(panel.locator(".log")).to_contain_text("GET /health 200")
    panel.get_by_role("button", name="Stop following").click()
    expect(panel.get_by_role("button", name="Follow")).to_have_attribute("aria-pressed", "false")
    page.screenshot(path=str(screenshot_dir / "deployment.png"), full_page=True)
    assert page.evaluate("window.__csp") == []


def test_another_users_deployment_is_404(page: Any, quiet: None) -> None:
    make_deployment(make_user("alice"))
    make_user("bob")
    log_in(page, "bob")
    response = page.goto("/deployments/alice-shop-main/")
    assert response is not None and response.status == 404
    page.goto("/deployments/")
    expect(page.get_by_text("You have no deployments yet.")).to_be_visible()


def test_the_pages_fit_a_phone_with_the_longest_name(
    browser: Any, live_server: Any, quiet: None, screenshot_dir: Path
) -> None:
    from containers import services
    from containers.deploy_names import deployment_name
    from containers.models import Deployment
    from tests.factories import make_site

    repository, ref = "acme-corporation/storefront", "feature/a-very-long-branch-name-indeed"
    name = deployment_name(repository, ref)
    assert len(name) == 63
    alice = make_user("alice")
    job = services.container_create(
        owner=alice, hostname=name, template=make_site().templates.get()
    )
    Deployment.objects.create(
        owner=alice,
        repository=repository,
        ref=ref,
        name=name,
        container=job.container,
        commit=SHA,
        state_message="installing: pip install -r requirements.txt " * 3,
    )
    context = browser.new_context(base_url=live_server.url, viewport={"width": 390, "height": 844})
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        log_in(page, "alice")
        page.goto("/deployments/")
        expect(page.locator(f'tr[data-deployment="{name}"]')).to_be_visible()
        assert_fits(page)
        page.screenshot(path=str(screenshot_dir / "layout-deployments-phone.png"), full_page=True)
        page.goto(f"/deployments/{name}/")
        expect(page.locator("h1")).to_contain_text(name)
        assert_fits(page)
        page.screenshot(path=str(screenshot_dir / "layout-deployment-phone.png"), full_page=True)
    finally:
        context.close()
