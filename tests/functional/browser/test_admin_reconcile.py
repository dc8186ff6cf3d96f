"""An operator reconciles a site from the Django admin in real Chromium: the report shows
what was found, and an orphan is adopted from it."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from containers.models import Container, JobKind
from tests.conftest import wait_job
from tests.functional.browser.conftest import log_in, make_user

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.usefixtures("transactional_db", "local_login"),
]


def test_reconcile_now_then_adopt_the_orphan_it_reports(
    page: Any, cluster: Any, sim: Any, worker: Any, screenshot_dir: Path
) -> None:
    used = {int(g["vmid"]) for g in sim.admin.guests()}
    vmid = next(v for v in range(95001, 99999, 2) if v not in used)
    name = f"stray-{uuid.uuid4().hex[:6]}"
    sim.admin.create_foreign_guest("pve1", vmid, name=name, tags="cluster-portal")
    make_user("root", is_staff=True, is_superuser=True)
    log_in(page, "root")

    page.goto("/admin/containers/reconcilerun/")
    page.get_by_role("link", name="Reconcile now").click()
    expect(page.get_by_label("Dry run")).to_be_checked()
    page.get_by_role("button", name="Reconcile").click()
    page.wait_for_url(re.compile(r"/admin/containers/reconcilerun/\d+/change/$"))
    expect(page.locator(".messagelist")).to_contain_text(
        re.compile("dry run; checked pve2, pve1", re.I)
    )
    finding = page.locator("tr", has_text=f"CT {vmid} ({name}")
    expect(finding).to_contain_text("carries the portal's tag")
    page.screenshot(path=str(screenshot_dir / "admin-reconcile-report.png"), full_page=True)

    page.get_by_role("link", name="Adopt or destroy orphans from the findings list").click()
    # The run also reports what earlier tests left on the shared simulator: past 100
    # findings the list has pages, so look the CT up as an operator would.
    page.locator("#searchbar").fill(str(vmid))
    page.locator("#searchbar").press("Enter")
    expect(page).to_have_url(re.compile(rf"run__id__exact=\d+.*q={vmid}|q={vmid}.*run__id__exact"))
    page.locator("tr", has_text=f"CT {vmid} (").locator("input[type=checkbox]").check()
    page.locator("select[name=action]").select_option("adopt")
    page.get_by_role("button", name="Go").click()
    expect(page.locator(".messagelist")).to_contain_text(f"CT {vmid}: adopted as {name}")
    c = Container.objects.get(vmid=vmid, site=cluster)
    assert c.hostname == name and c.owner.username == "root"
    assert wait_job(c.jobs.get(kind=JobKind.MEND).pk).status == "succeeded"
