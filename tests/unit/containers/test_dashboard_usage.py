"""The dashboard's CPU and memory at a glance (issue #16, item 2): each row shows its
latest sample, the list sorts by either, containers without a sample come last, and the
page's queries do not grow with its rows. The container page offers the charts."""

from __future__ import annotations

import re

import pytest
from django.contrib.staticfiles import finders
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from containers.metrics.models import ContainerSample
from containers.models import Container
from portal.templatetags.portal_ui import iec_bytes, percent
from tests.factories import UserFactory, make_containers, make_site

pytestmark = pytest.mark.django_db

MIB = 1024 * 1024
ROW = re.compile(r'<tr data-hostname="([^"]+)">')


@pytest.fixture
def staff() -> Client:
    client = Client()
    client.force_login(UserFactory(username="stella", is_staff=True))
    return client


def sample(c: Container, *, cpu: float, mem_mib: int) -> ContainerSample:
    return ContainerSample(
        container=c,
        sampled_at=timezone.now(),
        pve_status="running",
        cpu=cpu,
        cpus=2,
        mem=mem_mib * MIB,
        maxmem=512 * MIB,
        disk=0,
        maxdisk=8 * 1024 * MIB,
    )


def rows(client: Client, query: str = "") -> list[str]:
    response = client.get(f"/{query}")
    assert response.status_code == 200
    return ROW.findall(response.content.decode())


def test_the_dashboard_sorts_by_cpu_and_memory_with_unsampled_last(staff: Client) -> None:
    site = make_site(None)
    a, b, c, _unsampled = make_containers(site, 4)  # m1000..m1003
    ContainerSample.objects.bulk_create(
        [
            sample(a, cpu=0.10, mem_mib=300),
            sample(b, cpu=0.90, mem_mib=100),
            sample(c, cpu=0.50, mem_mib=200),
        ]
    )
    assert rows(staff) == ["m1000", "m1001", "m1002", "m1003"]  # by hostname
    assert rows(staff, "?sort=-cpu") == ["m1001", "m1002", "m1000", "m1003"]
    assert rows(staff, "?sort=cpu") == ["m1000", "m1002", "m1001", "m1003"]
    assert rows(staff, "?sort=-mem") == ["m1000", "m1002", "m1001", "m1003"]
    assert rows(staff, "?sort=mem") == ["m1001", "m1002", "m1000", "m1003"]
    # Anything else is the default order, never an error.
    assert rows(staff, "?sort=owner__password") == ["m1000", "m1001", "m1002", "m1003"]

    page = staff.get("/?sort=-cpu&q=m10").content.decode()
    # The figures, and the header that sorts the other way next, keeping the filters.
    assert "90.0 %" in page and "300 MiB of 512 MiB" in page
    assert 'aria-sort="descending"><a class="sort" href="?q=m10&amp;sort=cpu"' in page
    assert 'aria-sort="none"><a class="sort" href="?q=m10&amp;sort=-mem"' in page
    assert "sort=-cpu&amp;page=" not in page  # one page: no pager links; the query holds sort
    assert re.search(r'<meter min="0" max="1" value="0.9000"', page)


def test_the_dashboard_queries_stay_flat_as_rows_grow(staff: Client) -> None:
    site = make_site(None)
    every = make_containers(site, 33)
    first, more = every[:3], every[3:]
    ContainerSample.objects.bulk_create(sample(c, cpu=0.2, mem_mib=64) for c in first)
    # Three rows first: the others are out of sight (deleted) until counted again.
    Container.objects.filter(pk__in=[c.pk for c in more]).update(status="deleted")
    staff.get("/?sort=-mem")  # warm: the session, the content types
    with CaptureQueriesContext(connection) as seen:
        assert len(rows(staff, "?sort=-mem")) == 3
    baseline = len(seen.captured_queries)

    Container.objects.filter(pk__in=[c.pk for c in more]).update(status="running")
    ContainerSample.objects.bulk_create(sample(c, cpu=0.3, mem_mib=128) for c in more[:20])
    for query in ("?sort=-mem", "?sort=cpu", ""):
        with CaptureQueriesContext(connection) as seen:
            assert len(rows(staff, query)) == 33
        assert len(seen.captured_queries) == baseline, query


def test_figures_read_as_proxmox_shows_them() -> None:
    assert iec_bytes(None) == "\N{EN DASH}" and percent(None) == "\N{EN DASH}"
    assert iec_bytes(512) == "512 B"
    assert iec_bytes(300 * MIB) == "300 MiB"
    assert iec_bytes(1536 * MIB) == "1.50 GiB"
    assert iec_bytes(12.5 * 1024 * MIB) == "12.5 GiB"
    assert percent(0.123) == "12.3 %"


def test_the_container_page_loads_charts_only_for_a_container_proxmox_holds(
    staff: Client,
) -> None:
    site = make_site(None)
    running, pending = make_containers(site, 2)
    Container.objects.filter(pk=pending.pk).update(status="pending")

    page = staff.get(f"/containers/{running.pk}/").content.decode()
    assert f'data-charts="/api/v1/containers/{running.pk}/metrics/"' in page
    for script in ("vendor/uplot/uPlot.iife.min.js", "portal/charts.js"):
        assert f'<script src="/static/{script}" defer></script>' in page
    assert '<link rel="stylesheet" href="/static/vendor/uplot/uPlot.min.css">' in page
    for panel in ("cpu", "memory", "disk", "net", "diskio", "pressure"):
        assert f'data-chart="{panel}"' in page
    for option in ("hour", "day", "week", "month", "year", "AVERAGE", "MAX"):
        assert f'<option value="{option}">' in page

    page = staff.get(f"/containers/{pending.pk}/").content.decode()
    assert "data-charts=" not in page and "charts.js" not in page


def test_uplot_is_served_from_npm_install_not_the_repository() -> None:
    """make install's `npm ci` puts uPlot in node_modules/; staticfiles serves (and
    collectstatic copies) it under vendor/uplot/."""
    for name in ("uPlot.iife.min.js", "uPlot.min.css"):
        found = finders.find(f"vendor/uplot/{name}")
        assert found is not None, name
        assert "/node_modules/uplot/dist/" in str(found)
