"""The container page's charts in real Chromium (issue #16, item 2): uPlot, installed by
`make install` from npm, draws Proxmox's RRD from the simulator over HTTPS; the range and
average/maximum selectors fetch again; the legends show values the test controls; the
dashboard shows the latest CPU and memory and sorts by them. Saves the screenshot the
issue asks for (test-artifacts/screenshots/container-charts.png; docs/screenshots keeps a copy)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from containers.metrics.poll import metrics_poll_site
from containers.models import Container
from tests.factories import make_containers
from tests.functional.browser.conftest import SCREENSHOTS, log_in, make_user

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.usefixtures("transactional_db", "local_login"),
]

VMID = 62_001  # odd: pve1 (slot 1), as make_containers places it
AGE = 8 * 86400  # old enough for a full week of history
PANELS = ("cpu", "memory", "disk", "net", "diskio", "pressure")
# Beside the other tests' screenshots (test-artifacts/, not in git); docs/screenshots holds
# a copy taken on purpose.
SCREENSHOT = SCREENSHOTS / "container-charts.png"
WATCH_CSP = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.effectiveDirective} blocked ${e.blockedURI}`);
});
"""


@pytest.fixture
def busy(cluster: Any, sim: Any) -> Iterator[Container]:
    """A CT that has run for eight days, its memory pressure fixed at 12.5 % (some) and
    3 % (full) all along, the portal's container for it and one metrics poll."""
    sim.admin.remove_guests([VMID])
    # Made in the past: the simulator's clock goes back, and forward again to now.
    sim.admin.advance_clock(-AGE)
    try:
        sim.admin.create_foreign_guest("pve1", VMID, status="running", memory=1024)
        sim.admin.set_guest_usage(
            VMID, values={"pressurememorysome": 12.5, "pressurememoryfull": 3.0}
        )
    finally:
        sim.admin.advance_clock(AGE)
    (container,) = make_containers(cluster, 1, first_vmid=VMID)
    metrics_poll_site(site=cluster)
    yield container
    sim.admin.remove_guests([VMID])


def legend(page: Any, panel: str) -> Any:
    return page.locator(f'[data-chart="{panel}"] .u-legend')


def wait_charts(page: Any, timeframe: str, cf: str) -> None:
    root = page.locator("[data-charts]")
    expect(root).to_have_attribute("data-charts-state", "ready")
    expect(root).to_have_attribute("data-timeframe", timeframe)
    expect(root).to_have_attribute("data-cf", cf)


def test_charts_switch_range_and_consolidation_and_show_the_figures(
    page: Any, busy: Container
) -> None:
    make_user("root", is_staff=True, is_superuser=True)
    page.add_init_script(WATCH_CSP)
    log_in(page, "root")

    # The dashboard: the latest CPU and memory, and a header that sorts by them.
    row = page.locator(f'tr[data-hostname="{busy.hostname}"]')
    expect(row.locator("[data-cpu]")).to_have_text(re.compile(r"^\d+\.\d %$"))
    expect(row.locator("[data-mem]")).to_have_text(re.compile(r" MiB of 1.00 GiB$"))
    page.get_by_role("link", name=re.compile("^CPU")).click()
    expect(page).to_have_url(re.compile(r"\?sort=-cpu$"))
    expect(page.locator("th[aria-sort=descending]")).to_contain_text("CPU")

    page.goto(f"/containers/{busy.pk}/")
    wait_charts(page, "hour", "AVERAGE")
    # Six charts, each a canvas with a legend: the latest value until someone points.
    for panel in PANELS:
        canvas = page.locator(f'[data-chart="{panel}"] canvas')
        expect(canvas).to_have_count(1)
        assert canvas.bounding_box()["width"] > 300
    expect(legend(page, "pressure")).to_contain_text("12.5 %")
    expect(legend(page, "pressure")).to_contain_text("3.00 %")
    expect(legend(page, "memory")).to_contain_text("1.00 GiB")  # the limit
    expect(legend(page, "cpu")).to_contain_text(re.compile(r"CPU usage\s*\d+\.\d+ %"))
    expect(legend(page, "net")).to_contain_text(re.compile(r"In\s*[\d.]+ (B|KiB)/s"))
    expect(page.locator("[data-chart-status]")).to_contain_text("60 points, one every 1 min")
    # The latest figures, swap read live from Proxmox.
    expect(page.locator("[data-latest-mem]")).to_contain_text("of 1.00 GiB")
    expect(page.locator("[data-latest-swap]")).to_contain_text(re.compile(r" of [\d.]+ MiB"))

    # Pointing at a time shows that time's values.
    assert "latest" in legend(page, "cpu").inner_text()
    page.locator('[data-chart="cpu"] .u-over').hover()
    expect(legend(page, "cpu")).not_to_contain_text("latest")

    # Another range, then maxima: fetched and drawn again.
    page.get_by_label("Range").select_option("week")
    wait_charts(page, "week", "AVERAGE")
    expect(page.locator("[data-chart-status]")).to_contain_text("336 points, one every 30 min")
    expect(legend(page, "pressure")).to_contain_text("12.5 %")
    page.get_by_label("Values").select_option("MAX")
    wait_charts(page, "week", "MAX")
    for panel in PANELS:
        expect(page.locator(f'[data-chart="{panel}"] canvas')).to_have_count(1)
    page.get_by_label("Range").select_option("year")
    wait_charts(page, "year", "MAX")
    expect(page.locator("[data-chart-status]")).to_contain_text("1440 points, one every 6 h")

    # The screenshot: a day of averages.
    page.get_by_label("Range").select_option("day")
    page.get_by_label("Values").select_option("AVERAGE")
    wait_charts(page, "day", "AVERAGE")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.locator("section.metrics").screenshot(path=str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 10_000
    assert page.evaluate("window.__csp") == []
