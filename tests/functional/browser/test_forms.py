"""Errors where they happened, in real Chromium (issue #12, items 8 and 12): every error of
the create form at once with the input kept and the template's limits on the numbers; a
failed form of the container page back on that page; the API docs with nothing from
outside loopback."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from containers import services
from containers.models import Container, ContainerStatus, Job, JobStatus
from tests.factories import TemplateFactory, make_site
from tests.functional.browser.conftest import log_in, make_user

pytestmark = [
    pytest.mark.browser,
    pytest.mark.usefixtures("transactional_db", "local_login"),
]

HOSTNAME_70 = "a-name-far-too-long-for-one-dns-label-" + "x" * 32
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


@pytest.fixture
def site() -> Any:
    site = make_site(None)
    # A second, smaller template: the number inputs follow the one chosen.
    TemplateFactory(
        site=site,
        name="alpine-3",
        display_name="Alpine 3",
        volid="local:vztmpl/alpine-3.tar.xz",
        max_cores=2,
        max_memory_mib=1024,
        max_swap_mib=512,
        max_disk_gib=16,
    )
    return site


def bounds(page: Any, field: str) -> tuple[str | None, str | None]:
    box = page.locator(f"#id_{field}")
    return box.get_attribute("min"), box.get_attribute("max")


def test_the_create_form_shows_every_error_at_once_and_keeps_the_input(
    page: Any, site: Any, screenshot_dir: Path
) -> None:
    assert len(HOSTNAME_70) == 70
    make_user("carol")
    log_in(page, "carol")
    page.goto("/containers/new/")
    page.get_by_label("Template").select_option(label="Debian 12")
    # The numbers offer the chosen template's limits, and follow another choice.
    assert bounds(page, "cores") == ("1", "4") and bounds(page, "disk_gib") == ("1", "64")
    page.get_by_label("Template").select_option(label="Alpine 3")
    assert bounds(page, "cores") == ("1", "2") and bounds(page, "memory_mib") == ("64", "1024")
    page.get_by_label("Template").select_option(label="Debian 12")
    assert bounds(page, "cores") == ("1", "4") and bounds(page, "swap_mib") == ("0", "4096")
    # Who may open its address: signed-in users unless chosen otherwise.
    expect(page.get_by_label("Any logged-in portal user")).to_be_checked()

    # Typed as a person types: the browser does not cut the name at 63.
    page.get_by_label("Hostname").press_sequentially(HOSTNAME_70)
    expect(page.get_by_label("Hostname")).to_have_value(HOSTNAME_70)
    expect(page.locator("#hostname-check")).to_contain_text("70 characters is too long")
    page.get_by_label("Cores").fill("9")
    page.get_by_label("Memory (MiB)").fill("99999")
    page.get_by_label("Disk (GiB)").fill("65")
    page.get_by_label("SSH public keys").fill("ssh-rsa nonsense")
    page.get_by_label("Anyone").check()
    page.get_by_role("button", name="Create container").click()

    # One answer with every error, each at its field.
    expect(page.locator("#hostname-error")).to_have_text(
        "hostname: 70 characters is too long; a hostname has at most 63"
    )
    expect(page.locator("#cores-error")).to_have_text(
        "cores 9 is outside 1-4 allowed for template debian-12"
    )
    expect(page.locator("#memory_mib-error")).to_contain_text("memory 99999 MiB is outside")
    expect(page.locator("#disk_gib-error")).to_contain_text("disk 65 GiB is outside 1-64 GiB")
    expect(page.locator(".field").filter(has=page.get_by_label("SSH public keys"))).to_contain_text(
        "not a valid ssh-rsa key"
    )
    # Styled as errors: the word, the colour, the bar; the fields marked invalid.
    error = page.locator("#cores-error")
    assert (
        page.evaluate("e => getComputedStyle(e, '::before').content", error.element_handle())
        == '"Error: "'
    )
    assert error.evaluate("e => getComputedStyle(e).color") == "rgb(207, 34, 46)"
    expect(page.get_by_label("Cores")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Hostname")).to_have_attribute("aria-invalid", "true")
    # The input as typed, and the limits still on the numbers.
    expect(page.get_by_label("Hostname")).to_have_value(HOSTNAME_70)
    expect(page.get_by_label("Cores")).to_have_value("9")
    expect(page.get_by_label("Memory (MiB)")).to_have_value("99999")
    expect(page.get_by_label("SSH public keys")).to_have_value("ssh-rsa nonsense")
    expect(page.get_by_label("Anyone")).to_be_checked()
    assert bounds(page, "cores") == ("1", "4") and bounds(page, "memory_mib") == ("64", "8192")
    page.screenshot(path=str(screenshot_dir / "create-form-all-errors.png"), full_page=True)
    assert not Container.objects.exists()

    # Mended, it creates, with the route access chosen.
    page.get_by_label("Hostname").fill("mended")
    page.get_by_label("Cores").fill("2")
    page.get_by_label("Memory (MiB)").fill("")
    page.get_by_label("Disk (GiB)").fill("")
    page.get_by_label("SSH public keys").fill("")
    page.get_by_role("button", name="Create container").click()
    page.wait_for_url(re.compile(r"/containers/\d+/$"))
    c = Container.objects.get(hostname="mended")
    assert c.cores == 2 and c.routes.get().access == "public"


def settled(page: Any) -> None:
    """The container's latest job is over, so its event stream ends at once and the page
    refreshes its live sections: wait until it has (the stream said so, and the page's
    requests are done)."""
    expect(page.locator("[data-job-events]")).to_have_attribute("data-job-final", "succeeded")
    page.wait_for_load_state("networkidle")


def test_a_failed_form_of_the_container_page_comes_back_to_it(
    page: Any, site: Any, screenshot_dir: Path
) -> None:
    dora = make_user("dora")
    make_user("erik")
    template = site.templates.get(name="debian-12")
    job = services.container_create(owner=dora, hostname="shop", template=template)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED)
    Container.objects.filter(pk=job.container_id).update(status=ContainerStatus.RUNNING)
    log_in(page, "dora")
    page.goto(f"/containers/{job.container_id}/")
    here = re.compile(rf"/containers/{job.container_id}/(#[\w-]+)?$")
    # The page refreshes its live sections once it hears the job is over: a form typed
    # into before that could be swapped out under the click (seen on a loaded machine).
    settled(page)

    # A collaborator who does not exist: said at the field, on the container's page.
    page.get_by_label("Add a collaborator").fill("nobody")
    page.get_by_role("button", name="Add collaborator").click()
    expect(page.locator("#collab-error")).to_have_text("no user named 'nobody' can be given access")
    expect(page).to_have_url(here)
    expect(page.get_by_label("Add a collaborator")).to_have_value("nobody")
    page.screenshot(path=str(screenshot_dir / "container-collaborator-error.png"), full_page=True)
    # A reload asks nothing of the browser (no POST to repeat) and shows a clean form.
    page.reload()
    expect(page.locator("#collab-error")).to_have_count(0)
    settled(page)  # typed into before the page's own refresh, a form could be swapped out

    # A resize out of the template's limits, and a delete with a typo: each at its form.
    page.locator("#id_cores").fill("7")
    page.get_by_role("button", name="Resize", exact=True).click()
    expect(page).to_have_url(here)
    settled(page)  # the refresh keeps a form sent back to be corrected as it came
    expect(page.locator("#resize-cores-error")).to_contain_text("cores 7 is outside 1-4")
    expect(page.locator("#id_cores")).to_have_value("7")
    assert page.locator("#id_cores").get_attribute("max") == "4"
    page.get_by_label(re.compile("to delete this container")).fill("sohp")
    page.get_by_role("button", name="Delete shop").click()
    expect(page).to_have_url(here)
    expect(page.locator("#confirm-error")).to_have_text("type shop to delete it")
    expect(page.get_by_label(re.compile("to delete this container"))).to_have_value("sohp")
    assert Container.objects.get(pk=job.container_id).status == ContainerStatus.RUNNING


def test_api_docs_load_nothing_from_outside_loopback(page: Any, site: Any) -> None:
    make_user("fay")
    log_in(page, "fay")
    seen: list[str] = []
    failed: list[str] = []
    page.on("request", lambda r: seen.append(r.url))
    page.on("requestfailed", lambda r: failed.append(f"{r.url}: {r.failure}"))
    violations: list[str] = []
    page.on(
        "console",
        lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
    )

    page.goto("/api/v1/redoc/")
    # The schema is generated on the first request: give it time on a busy machine.
    title = page.get_by_role("heading", name=re.compile("Cluster Portal API")).first
    expect(title).to_be_visible(timeout=30_000)
    create = page.locator("h2").filter(has_text=re.compile(r"^Create a container\s*$"))
    create.scroll_into_view_if_needed()
    expect(create).to_be_visible()
    expect(page.get_by_text("Idempotency-Key").first).to_be_attached()
    page.goto("/api/v1/docs/")
    expect(page.locator(".opblock").first).to_be_visible(timeout=30_000)

    assert seen, "no request was seen"
    away = [u for u in seen if urlsplit(u).scheme in ("http", "https", "ws", "wss")]
    away = [u for u in away if urlsplit(u).hostname not in LOOPBACK]
    assert away == [], away
    # A request cut short by leaving the page (the favicon, say) is no failure.
    assert [f for f in failed if "ERR_ABORTED" not in f] == [], failed
    assert violations == [], violations
    assert any("/api/v1/redoc/redoc.standalone.js" in u for u in seen)


def test_a_refused_login_is_styled_as_an_error_and_keeps_the_name(page: Any, site: Any) -> None:
    make_user("gwen")
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill("gwen")
    page.get_by_label("Password").fill("not her password")
    page.get_by_role("button", name="Log in").click()
    error = page.locator("#login-error")
    expect(error).to_have_text("Wrong username or password.")
    assert error.evaluate("e => getComputedStyle(e).color") == "rgb(207, 34, 46)"
    assert error.evaluate("e => getComputedStyle(e, '::before').content") == '"Error: "'
    expect(page.get_by_label("Username")).to_have_value("gwen")
