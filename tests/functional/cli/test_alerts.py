"""`portalctl alerts` and the alerts in `portalctl containers show`, against the real server
(issue #16): the rows are the poll's (seeded here as it leaves them)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from containers.metrics.models import AlertKind, ContainerAlert
from containers.models import Container
from tests.factories import make_containers

from .conftest import Cli, user_with_token

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def test_alerts_list_and_show(cli: Cli, cluster: Any) -> None:
    user, token = user_with_token("noisy")
    made = make_containers(cluster, 3, first_vmid=73_000)
    a, b, c = made
    Container.objects.filter(pk__in=[a.pk, b.pk]).update(owner=user)  # c is another's
    t0 = timezone.now().replace(microsecond=0) - timedelta(minutes=30)
    raised = t0 + timedelta(minutes=5)

    def seed(container: Container, kind: str, message: str, **times: Any) -> ContainerAlert:
        return ContainerAlert.objects.create(
            container=container, kind=kind, since=t0, value=0.97, message=message, **times
        )

    seed(a, AlertKind.MEMORY, "memory at 97% of its limit, memory pressure 42.5%", raised_at=raised)
    seed(a, AlertKind.CPU, "CPU at 100% of its cores")  # pending: not an alert yet
    seed(b, AlertKind.CPU, "CPU at 100% of its cores", raised_at=raised, cleared_at=raised)
    seed(c, AlertKind.CPU, "CPU at 100% of its cores", raised_at=raised)
    cli.env.update(PORTAL_URL=cli.url, PORTAL_TOKEN=token)
    # The client of this tree, whichever checkout the console script was installed from.
    cli.env["PYTHONPATH"] = str(Path(__file__).resolve().parents[3] / "portalctl" / "src")

    rows = json.loads(cli.ok("alerts", "--json").stdout)
    assert [(r["hostname"], r["kind"], r["state"]) for r in rows] == [
        (a.hostname, "memory", "open")
    ]
    screen = cli.ok("alerts").stdout
    line = next(row for row in screen.splitlines() if a.hostname in row)
    assert "memory" in line and "open" in line and "97%" in line and "pressure 42.5%" in line
    assert c.hostname not in screen  # another's

    every = json.loads(cli.ok("alerts", "--state", "all", "--json").stdout)
    assert sorted((r["hostname"], r["state"]) for r in every) == sorted(
        [(a.hostname, "open"), (b.hostname, "cleared")]
    )
    only_b = json.loads(cli.ok("alerts", "-s", "all", "-c", b.hostname, "--json").stdout)
    assert [r["hostname"] for r in only_b] == [b.hostname]
    assert json.loads(cli.ok("alerts", "--kind", "cpu", "--json").stdout) == []
    none = cli.ok("alerts", "--container", b.hostname)
    assert none.stdout == "" and "no open alerts" in none.stderr

    shown = cli.ok("containers", "show", a.hostname).stdout
    alerts_line = next(row for row in shown.splitlines() if row.startswith("alerts"))
    assert "memory since" in alerts_line and "memory pressure 42.5%" in alerts_line
    calm = cli.ok("containers", "show", b.hostname).stdout
    assert any(row.split() == ["alerts", "none"] for row in calm.splitlines())
    as_json = json.loads(cli.ok("containers", "show", a.hostname, "--json").stdout)
    assert [x["kind"] for x in as_json["alerts"]] == ["memory"]

    bad = cli("alerts", "--state", "pending")
    assert bad.returncode == 2 and "--state is open, cleared or all" in bad.stderr
    missing = cli("alerts", "--container", "nosuch")
    assert missing.returncode == 3
