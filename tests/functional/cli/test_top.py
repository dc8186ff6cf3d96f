"""`portalctl containers top` against the real server: the busiest containers by the
latest metrics poll, sorted by the API (issue #16)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.utils import timezone

from containers.metrics.models import ContainerSample
from containers.models import Container
from tests.factories import make_containers

from .conftest import Cli, user_with_token

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def test_top_sorts_by_cpu_or_memory(cli: Cli, cluster: Any) -> None:
    user, token = user_with_token("topper")
    made = make_containers(cluster, 6, first_vmid=71_000)
    Container.objects.filter(pk__in=[c.pk for c in made]).update(owner=user)
    now = timezone.now()
    figures = [(0.10, 900), (0.95, 100), (0.50, 300), (0.05, 50), (0.70, 200)]  # made[5]: none
    ContainerSample.objects.bulk_create(
        ContainerSample(
            container=c,
            sampled_at=now,
            pve_status="running",
            cpu=cpu,
            cpus=2,
            mem=mem << 20,
            maxmem=1024 << 20,
            netin_rate=1536.0,
            netout_rate=10.0,
        )
        for c, (cpu, mem) in zip(made, figures, strict=False)
    )
    cli.env.update(PORTAL_URL=cli.url, PORTAL_TOKEN=token)
    rows = json.loads(cli.ok("containers", "top", "--json", "-n", "3").stdout)
    assert [r["hostname"] for r in rows] == [made[i].hostname for i in (1, 4, 2)]
    assert rows[0]["metrics"]["cpu"] == 0.95
    rows = json.loads(cli.ok("containers", "top", "--sort", "mem", "--json").stdout)
    assert [r["hostname"] for r in rows][:2] == [made[0].hostname, made[2].hostname]
    assert rows[-1]["hostname"] == made[5].hostname and rows[-1]["metrics"] is None
    screen = cli.ok("containers", "top").stdout
    first = next(line for line in screen.splitlines() if made[1].hostname in line)
    assert "95.0% of 2" in first and "100.0M/1.0G (10%)" in first and "1.5K/s" in first
    bad = cli("containers", "top", "--sort", "disk")
    assert bad.returncode == 2 and "--sort is cpu or mem" in bad.stderr
