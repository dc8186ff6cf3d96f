"""The web GUI in real headless Chromium on the real stack: live server, Redis, a Celery
worker process, the Proxmox simulator and the session's private gateway."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from auth.models import ApiToken, Collaborator, GroupPolicy
from containers.models import Container, ContainerStatus
from tests.functional.browser.conftest import log_in, make_user

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.usefixtures("transactional_db", "local_login"),
]

JOB_TIMEOUT = 30_000  # ms; the simulator's tasks take 0.2 s


def wait_job_final(page: Any, status: str = "succeeded") -> None:
    """The page's live job section reaches a final state without a reload."""
    box = page.locator("[data-job-events]")
    expect(box).to_have_attribute("data-job-final", re.compile(r".+"), timeout=JOB_TIMEOUT)
    expect(box.locator("[data-job-status]")).to_contain_text(status)


def test_create_watch_copy_collaborate_stop_delete(
    page: Any, cluster: Any, worker: Any, screenshot_dir: Path
) -> None:
    make_user("alice")
    make_user("bob")
    log_in(page, "alice")

    page.goto("/")
    expect(page.get_by_text("You have no containers yet.")).to_be_visible()
    page.get_by_role("link", name="Create your first container").click()
    page.get_by_label("Hostname").fill("webapp")
    expect(page.locator("#hostname-check")).to_have_text("webapp is available")
    page.get_by_label("Cores").fill("2")
    page.get_by_role("button", name="Create container").click()

    # The container page follows the create job live: no reload.
    page.wait_for_url(re.compile(r"/containers/\d+/$"))
    c = Container.objects.get(hostname="webapp")
    page.evaluate("window.__same_document = true")
    wait_job_final(page)
    expect(page.locator("h1 [data-container-status]")).to_have_text("running", timeout=JOB_TIMEOUT)
    expect(page.locator(".timeline li").first).to_contain_text("done")
    expect(page.locator(".log")).to_contain_text("Publish its name and ports on the gateway")
    expect(page.locator(".log div").last).to_contain_text("Done")
    # The actions follow the new status too (Stop appears once it runs).
    expect(page.get_by_role("button", name="Stop", exact=True)).to_be_visible()
    assert page.evaluate("window.__same_document") is True  # still the same document
    c.refresh_from_db()
    assert c.status == ContainerStatus.RUNNING and c.cores == 2

    # The SSH command is the gateway's mapping; the copy button puts it on the clipboard.
    command = f"ssh -p {c.ssh_port} alice@webapp.apps.example.test"
    assert c.ssh_port
    overview_copy = page.locator("dl.facts").get_by_role("button", name="Copy the SSH command")
    overview_copy.click()
    expect(overview_copy).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == command
    expect(page.get_by_role("link", name="https://webapp.apps.example.test/").first).to_be_visible()
    page.screenshot(path=str(screenshot_dir / "container.png"), full_page=True)

    # A collaborator: an error at the field first (back on the container's page), then bob.
    page.get_by_label("Add a collaborator").fill("nobody")
    page.get_by_role("button", name="Add collaborator").click()
    expect(page.locator("#collab-error")).to_have_text("no user named 'nobody' can be given access")
    expect(page).to_have_url(re.compile(rf"/containers/{c.pk}/#collab-h$"))
    expect(page.get_by_label("Add a collaborator")).to_have_attribute("aria-invalid", "true")
    page.get_by_label("Add a collaborator").fill("bob")
    page.get_by_role("button", name="Add collaborator").click()
    expect(page.locator('[data-collaborator="bob"]')).to_be_visible()
    wait_job_final(page)  # the access job
    assert Collaborator.objects.filter(container=c, user__username="bob").exists()

    # The dashboard lists it with its status, URL, SSH command and node.
    page.goto("/")
    row = page.locator('tr[data-hostname="webapp"]')
    expect(row.locator(".badge")).to_have_text("Running")
    expect(row).to_contain_text(command)
    expect(row).to_contain_text(c.node.name)
    page.screenshot(path=str(screenshot_dir / "dashboard.png"), full_page=True)

    # Stop from the container page, and watch it.
    row.get_by_role("link", name="webapp", exact=True).click()
    page.get_by_role("button", name="Stop", exact=True).click()
    expect(page.locator("[data-job-events] h2")).to_contain_text("Stop")
    wait_job_final(page)
    expect(page.locator("h1 [data-container-status]")).to_have_text("stopped", timeout=JOB_TIMEOUT)

    # Delete asks for the hostname: a wrong one is refused at the form, the right one deletes.
    page.get_by_label(re.compile("to delete this container")).fill("webap")
    page.get_by_role("button", name="Delete webapp").click()
    expect(page.locator("#confirm-error")).to_have_text("type webapp to delete it")
    expect(page.get_by_label(re.compile("to delete this container"))).to_have_value("webap")
    page.get_by_label(re.compile("to delete this container")).fill("webapp")
    page.get_by_role("button", name="Delete webapp").click()
    expect(page.locator(".messages")).to_contain_text("Deleting webapp")
    # When the job ends the page follows by itself: it says the container is deleted, with
    # its history, and its actions are gone.
    expect(page.get_by_text("This container was deleted")).to_be_visible(timeout=JOB_TIMEOUT)
    c.refresh_from_db()
    assert c.status == ContainerStatus.DELETED
    expect(page.locator("#history-h + table")).to_contain_text("succeeded")
    expect(page.get_by_role("button", name="Delete webapp")).to_have_count(0)
    page.goto("/")
    expect(page.get_by_text("You have no containers yet.")).to_be_visible()


def test_create_form_errors_are_shown_at_the_field(
    page: Any, cluster: Any, screenshot_dir: Path
) -> None:
    GroupPolicy.objects.create(group=None, max_containers=3, max_cores=6, max_container_cores=4)
    make_user("carol")
    log_in(page, "carol")
    page.goto("/containers/new/")
    quota = page.locator("#quota")
    expect(quota.get_by_role("row", name=re.compile("^Containers"))).to_contain_text("3")
    expect(quota.get_by_role("row", name=re.compile("^Cores"))).to_contain_text("6")

    # The live check speaks the service's words before submitting.
    page.get_by_label("Hostname").fill("Bad_Name")
    expect(page.locator("#hostname-check")).to_contain_text("DNS label")
    page.screenshot(path=str(screenshot_dir / "create-form.png"), full_page=True)

    page.get_by_role("button", name="Create container").click()
    expect(page.locator("#hostname-error")).to_contain_text("must be a DNS label")
    page.get_by_label("Hostname").fill("good-name")
    page.get_by_label("Cores").fill("9")
    page.get_by_role("button", name="Create container").click()
    expect(page.locator("#cores-error")).to_contain_text("cores 9 is outside 1-4")
    expect(page.get_by_label("Hostname")).to_have_value("good-name")
    page.screenshot(path=str(screenshot_dir / "create-form-errors.png"), full_page=True)
    assert not Container.objects.exists()


def test_api_token_is_shown_once(page: Any, cluster: Any) -> None:
    make_user("dave")
    log_in(page, "dave")
    page.get_by_role("link", name="Profile (dave)").click()
    page.get_by_role("link", name="API tokens").first.click()
    page.get_by_label("Name").fill("  ")
    page.get_by_role("button", name="Create token").click()
    expect(page.locator("#name-error")).to_be_visible()

    page.get_by_label("Name").fill("CI deploy")
    page.get_by_label("Read and write").check()
    page.get_by_label("Expires after").select_option("30")
    page.get_by_role("button", name="Create token").click()
    shown = page.locator("#new-token")
    expect(shown).to_have_text(re.compile(r"^cpt_[0-9a-f]{8}_\S{20,}$"))
    plain = shown.inner_text()
    token = ApiToken.objects.get(user__username="dave")
    assert plain.startswith(f"cpt_{token.prefix}_") and token.scope == "write"
    button = page.get_by_role("button", name="Copy the new token")
    button.click()
    expect(button).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == plain

    # The token came in the POST's own answer; a fresh GET (not a re-POST) no longer has it.
    page.goto(page.url)
    expect(page.locator(f'tr[data-token="{token.prefix}"]')).to_contain_text("CI deploy")
    expect(page.locator("#new-token")).to_have_count(0)
    assert plain not in page.content()

    page.get_by_role("button", name="Revoke the token CI deploy").click()
    expect(page.locator(f'tr[data-token="{token.prefix}"]')).to_contain_text("revoked")


def test_a_failed_create_shows_its_error_and_is_tried_again(
    page: Any, cluster: Any, sim: Any, worker: Any, screenshot_dir: Path
) -> None:
    make_user("dora")
    log_in(page, "dora")
    sim.admin.fail_next_tasks("vzcreate", 1, "unpacking template failed - EIO")
    page.goto("/containers/new/")
    page.get_by_label("Hostname").fill("wobbly")
    page.get_by_role("button", name="Create container").click()
    page.wait_for_url(re.compile(r"/containers/\d+/$"))
    # The page follows the job to its end: the create failed, and it says why.
    expect(page.get_by_text("This container was deleted")).to_be_visible(timeout=JOB_TIMEOUT)
    expect(page.locator(".failed")).to_contain_text("unpacking template failed - EIO")
    # It stays on the dashboard, with its error, until tried again or dismissed.
    page.goto("/")
    failed = page.locator('[data-failed="wobbly"]')
    expect(failed).to_contain_text("unpacking template failed - EIO")
    page.screenshot(path=str(screenshot_dir / "dashboard-failed-create.png"), full_page=True)
    failed.get_by_role("button", name="Try again").click()
    page.wait_for_url(re.compile(r"/containers/\d+/$"))
    expect(page.locator("h1 [data-container-status]")).to_have_text("running", timeout=JOB_TIMEOUT)
    page.goto("/")
    expect(page.locator('[data-failed="wobbly"]')).to_have_count(0)
    expect(page.locator('tr[data-hostname="wobbly"] .badge')).to_have_text("Running")


def test_the_page_follows_a_resize_without_a_reload(
    page: Any, cluster: Any, worker: Any, screenshot_dir: Path
) -> None:
    from containers import services

    erin = make_user("erin")
    job = services.container_create(owner=erin, hostname="grow", template=cluster.templates.get())
    log_in(page, "erin")
    page.goto(f"/containers/{job.container_id}/")
    expect(page.locator("h1 [data-container-status]")).to_have_text("running", timeout=JOB_TIMEOUT)
    page.reload()  # the resize form is offered once it runs
    page.locator("#id_cores").fill("2")
    page.get_by_role("button", name="Resize", exact=True).click()
    expect(page.locator(".messages")).to_contain_text("Resize of grow queued")
    page.evaluate("window.__same_document = true")
    overview = page.locator("#live-overview")
    expect(overview).to_contain_text("2 cores", timeout=JOB_TIMEOUT)
    expect(page.locator("#live-history")).to_contain_text("Resize")
    assert page.evaluate("window.__same_document") is True  # no reload
