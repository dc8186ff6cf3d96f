"""`manage.py gateway render|apply|status`, and the auth_request endpoint.

The commands against the real nginx and dnsmasq; the auth_request endpoint, in process,
is in tests/unit/networking/test_command.py.
"""

from __future__ import annotations

import subprocess
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.conftest import need_binary
from tests.factories import make_site
from tests.fixtures.networking import create

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args: str) -> str:
    out = StringIO()
    call_command("gateway", *args, stdout=out)
    return out.getvalue()


@pytest.mark.gateway
def test_render_writes_a_self_contained_configuration_the_real_tools_accept(
    no_jobs: None, no_gateway_tasks: None, tmp_path: Path, settings: Any
) -> None:
    from networking.tls import make_wildcard_certificate

    certs = make_wildcard_certificate(tmp_path / "tls", ["apps.example.test"])
    settings.GATEWAY_TLS_CERTIFICATE = str(certs.certificate)
    settings.GATEWAY_TLS_CERTIFICATE_KEY = str(certs.key)
    site = make_site(None, dns_forwarders="192.0.2.53, 2001:db8::53#5353")
    create(site, "web")
    out_dir = tmp_path / "out"
    text = run("render", "--site", "local", "--out", str(out_dir))
    assert "1 routes, 1 port mappings" in text
    nginx, dnsmasq = need_binary("nginx"), need_binary("dnsmasq")
    count = settings.GATEWAY_STREAM_SHARDS
    shards = [out_dir / "nginx" / f"stream-{i}.conf" for i in range(count)]
    for conf in [out_dir / "nginx" / "nginx.conf", *shards]:
        t = subprocess.run(
            [nginx, "-t", "-c", str(conf), "-p", f"{out_dir}/nginx/"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert t.returncode == 0, t.stderr
    d = subprocess.run(
        [dnsmasq, "--test", f"--conf-file={out_dir}/dnsmasq/dnsmasq.conf"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert d.returncode == 0, d.stderr
    conf = (out_dir / "dnsmasq" / "dnsmasq.conf").read_text()
    assert f"addn-hosts={out_dir}/dnsmasq/hosts" in conf and "server=2001:db8::53#5353" in conf
    # The mapping in the shard of its port, which alone loads the stream module.
    port = site.port_mappings.get().external_port
    shard = shards[port % count].read_text()
    assert f":{port}; # mapping " in shard
    assert "load_module /usr/lib/nginx/modules/ngx_stream_module.so;" in shard
    assert "load_module" not in (out_dir / "nginx" / "nginx.conf").read_text()


@pytest.mark.gateway
def test_apply_and_status(gw_site: Any, local_gateway: Any) -> None:
    create(gw_site, "web")
    text = run("apply", "--site", "local")
    assert "applied" in text and "nginx reloaded" in text
    assert "unchanged" in run("apply", "--site", "local")
    assert "nginx reloaded" in run("apply", "--site", "local", "--force")
    status = run("status", "--site", "local")
    assert "1 routes, 1 port mappings" in status and "applied" in status
    with pytest.raises(CommandError, match="no site 'nope'"):
        run("status", "--site", "nope")
