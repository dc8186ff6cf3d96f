"""The private gateway in a checkout under a 0700 directory (root's home, any `mktemp -d`).

nginx and dnsmasq started as root drop their workers to `nobody` unless told otherwise;
such workers cannot walk into a 0700 directory, so names did not resolve and nginx's own
error pages answered 403. The local gateway runs its workers as the invoking user.
"""

from __future__ import annotations

import random
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from tests.conftest import GATEWAY_TEST_SETTINGS, need_binary
from tests.fixtures.networking import apply, create, https, resolve

pytestmark = [pytest.mark.gateway, pytest.mark.django_db]


@pytest.fixture
def private_gateway() -> Iterator[Any]:
    """A LocalGateway whose files live three levels under a fresh 0700 directory."""
    from networking.gateway import LocalGateway

    need_binary("nginx")
    need_binary("dnsmasq")
    home = Path(tempfile.mkdtemp(prefix="portal-home-"))
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    root = home / "src" / "checkout" / "var"
    bind = f"127.{random.randint(100, 250)}.{random.randint(1, 250)}.1"
    # The gateway sets the process's settings; the override keeps them to this test.
    with override_settings():
        gw = LocalGateway(
            root, domains=["apps.example.test"], stream_bind=bind, **GATEWAY_TEST_SETTINGS
        )
        try:
            gw.start()
            yield gw
        finally:
            gw.stop()
    assert stat.S_IMODE(home.stat().st_mode) == 0o700  # nothing widened it
    shutil.rmtree(home, ignore_errors=True)


def test_the_gateway_serves_from_a_private_checkout(
    private_gateway: Any, no_jobs: None, no_gateway_tasks: None
) -> None:
    from tests.factories import make_site

    x = random.randint(2, 99)
    site = make_site(
        None,
        subnet=f"127.{x}.0.0/16",
        gateway_ip=f"127.{x}.0.1",
        reserved_ranges=f"127.{x}.0.0-127.{x}.0.255",
        dhcp_range_start=f"127.{x}.255.0",
        dhcp_range_end=f"127.{x}.255.254",
    )
    box = create(site, "inside")
    revision = apply(site)
    assert revision.status == "applied", revision.error

    # dnsmasq read the hosts file under the 0700 directory.
    assert resolve(private_gateway, f"inside.{site.internal_domain}") == [str(box.ip)]
    # nginx opened its own 404 page there: not a bare 403.
    answer = https(private_gateway, f"nobody-here.{site.domain}")
    assert answer.status == 404
    assert "No container answers at this address" in answer.data.decode()
    log = private_gateway.paths().run / "logs" / "dnsmasq.log"
    assert "Permission denied" not in log.read_text(errors="replace")
