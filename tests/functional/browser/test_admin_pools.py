"""An operator looks after the warm pool from the Django admin in real Chromium (issue #18):
each pool's target, size, oldest member, hit rate and last build, from pools the refill
really filled on the simulator and creates that really claimed from them; then the operator
turns a pool off. Saves the screenshot the issue asks for
(test-artifacts/screenshots/admin-pools.png; docs/screenshots keeps a copy)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from auth.models import AuditEntry
from containers import services
from containers.pool.models import PoolMember, PoolMemberState, PoolTarget
from containers.pool.refill import refill_site
from containers.pool.services import pool_target_set
from tests.factories import UserFactory
from tests.functional.browser.conftest import SCREENSHOTS, log_in, make_user

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.usefixtures("transactional_db", "local_login"),
]


def test_the_pools_page_shows_each_pool_and_turns_one_off(
    page: Any, cluster: Any, own_workers: Any
) -> None:
    template = cluster.templates.get()
    for node in cluster.nodes.all():
        pool_target_set(template=template, node=node, target=2, actor=None)
    refill_site(cluster)  # two stopped members on each node, made on the simulator
    assert PoolMember.objects.filter(state=PoolMemberState.READY).count() == 4
    # Five creates: four take the members (hits), the fifth finds none (a miss). The
    # workers are paused; cancelled, each claimed member goes back to its pool.
    jobs = [
        services.container_create(owner=UserFactory(), hostname=f"web{i}", template=template)
        for i in range(5)
    ]
    for job in jobs:
        services.job_cancel(job=job, actor=None)
    assert PoolMember.objects.filter(state=PoolMemberState.READY).count() == 4

    make_user("root", is_staff=True, is_superuser=True)
    log_in(page, "root")
    page.goto("/admin/containers/pooltarget/")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(2)
    for name in ("pve1", "pve2"):
        row = rows.filter(has_text=name)
        expect(row.locator("td.field-target")).to_have_text("2")
        expect(row.locator("td.field-size")).to_have_text("2")
        expect(row.locator("td.field-oldest")).to_contain_text("minute")
        expect(row.locator("td.field-build_time")).to_have_text(re.compile(r"^\d+\.\d s$"))
    hit_rates = sorted(rows.locator("td.field-hit_rate").all_inner_texts())
    # The miss counts on the pool of the node its normal create chose.
    assert hit_rates in (["100% (2 of 2)", "67% (2 of 3)"], ["67% (2 of 3)", "100% (2 of 2)"])
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.locator("#toggle-nav-sidebar").click()  # the whole table, for the screenshot
    expect(rows.first.locator("td.field-skipped_reason")).to_be_in_viewport()
    page.screenshot(path=str(SCREENSHOTS / "admin-pools.png"), full_page=True)

    # Turning a pool off is a target of 0, through the service (audited).
    rows.filter(has_text="pve1").locator("th a").click()
    page.get_by_label("Target").fill("0")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
    assert PoolTarget.objects.get(node__name="pve1").target == 0
    assert AuditEntry.objects.filter(action="pool.target", summary__contains="2 -> 0").exists()
