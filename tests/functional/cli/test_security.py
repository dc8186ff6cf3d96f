"""`portalctl containers security NAME` against the real server and the Wazuh double: the
agent's status as polled and a page of its recent alerts; an indexer that is down is said,
not a failure; a container not yours is exit 3, and so is one of a site without Wazuh."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from containers.models import Container
from containers.wazuh.poll import wazuh_poll_site
from tests.factories import make_containers, make_site
from tests.fixtures.wazuh_double import VERSION, WazuhDouble
from tests.functional.wazuh.arrange import watch

from .conftest import Cli, user_with_token

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_security_shows_the_agent_and_its_alerts(cli: Cli, wazuh: WazuhDouble) -> None:
    user, token = user_with_token("watched")
    site = make_site(None, slug="sec")
    plain = make_site(None, slug="plain")
    [ct] = make_containers(site, 1, first_vmid=74_000)
    [bare] = make_containers(plain, 1, first_vmid=75_000)
    Container.objects.filter(pk__in=[ct.pk, bare.pk]).update(owner=user)
    manager = wazuh.configure(site)
    [agent] = watch([ct], wazuh, status="disconnected", last_keepalive=T0, group=["web"])
    wazuh_poll_site(manager=manager, now=T0 + timedelta(minutes=5))
    for i in range(25):
        wazuh.seed_alert(
            agent.name, 3 + i % 10, f"event {i}", timestamp=T0 - timedelta(minutes=25 - i)
        )
    cli.env.update(PORTAL_URL=cli.url, PORTAL_TOKEN=token)

    shown = cli.ok("containers", "security", ct.hostname)
    lines = shown.stdout.splitlines()
    assert lines[0].split() == ["agent", agent.name]
    assert "disconnected, as of 2026-12-01 12:05:00" in lines[1]
    assert "last keep-alive  2026-12-01 12:00:00" in shown.stdout
    assert f"version          {VERSION}" in shown.stdout and "groups           web" in shown.stdout
    first = next(line for line in lines if "event 24" in line)
    assert first.split()[:5] == ["2026-12-01", "11:59:00", "7", "medium", "event"]
    assert "syslog, sshd" in first
    assert "page 1 of 2 (25 alerts): --page N for another" in shown.stderr

    body = json.loads(cli.ok("containers", "security", ct.hostname, "--json").stdout)
    assert body["agent"]["status"] == "disconnected" and body["alerts"]["count"] == 25
    older = cli.ok("containers", "security", ct.hostname, "--page", "2").stdout
    assert "event 0" in older and "event 24" not in older

    wazuh.set_down()
    down = cli.ok("containers", "security", ct.hostname, "--page", "3")
    assert "alerts: The Wazuh indexer is not answering right now" in down.stderr
    assert "disconnected" in down.stdout
    wazuh.set_down(False)

    none = cli("containers", "security", bare.hostname)
    assert none.returncode == 3 and "has no security monitoring" in none.stderr
    assert "wazuh" not in (none.stdout + none.stderr).lower()
    _, other = user_with_token("stranger")
    theirs = cli("containers", "security", ct.hostname, env={"PORTAL_TOKEN": other})
    assert theirs.returncode == 3, theirs.stderr


def test_security_is_listed_in_the_containers_help(cli: Cli) -> None:
    helped = cli.ok("containers", "--help").stdout
    assert "security" in helped
