"""`manage.py gateway render|apply|status`, and the auth_request endpoint."""

from __future__ import annotations

import subprocess
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from networking import publishing
from tests.conftest import need_binary
from tests.factories import UserFactory, make_site
from tests.networking.conftest import create

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
    t = subprocess.run(
        [nginx, "-t", "-c", f"{out_dir}/nginx/nginx.conf", "-p", f"{out_dir}/nginx/"],
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
    assert (
        "load_module /usr/lib/nginx/modules/ngx_stream_module.so;"
        in (out_dir / "nginx" / "nginx.conf").read_text()
    )


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


def test_the_auth_endpoint_answers_for_the_route_of_the_host(
    no_jobs: None, no_gateway_tasks: None, client: Any
) -> None:
    from auth.gateway_access import credential_exchange, credential_mint

    site = make_site(None)
    owner, other = UserFactory(username="own"), UserFactory(username="oth")
    web = create(site, "web", owner=owner)
    publishing.route_update(route=web.routes.get(), access="owner")
    url = "/gateway/auth"
    fqdn = "web.apps.example.test"
    host = {"HTTP_X_ORIGINAL_HOST": fqdn}

    def credential(user: Any, for_host: str = fqdn) -> dict[str, str]:
        code = credential_mint(user=user, host=for_host, session_key=f"s-{user.pk}")
        secret = credential_exchange(code=code, host=for_host)
        assert secret is not None
        return {"HTTP_COOKIE": f"a=1; {settings.GATEWAY_CREDENTIAL_COOKIE}={secret}; b=2"}

    assert client.get(url, **host).status_code == 401
    # The portal's own session is never a gateway credential.
    client.force_login(owner)
    assert client.get(url, **host).status_code == 401
    client.logout()
    r = client.get(url, **host, **credential(other))
    assert r.status_code == 403 and r["X-Gateway-Cookie"] == "a=1; b=2"
    assert client.get(url, **host, **credential(owner)).status_code == 204
    minted_elsewhere = credential(owner, "other.apps.example.test")
    assert client.get(url, **host, **minted_elsewhere).status_code == 401
    assert client.get(url, HTTP_X_ORIGINAL_HOST="nope.apps.example.test").status_code == 403
    publishing.route_update(route=web.routes.get(), access="users")
    assert client.get(url, **host, **credential(other)).status_code == 204
    publishing.route_update(route=web.routes.get(), access="public")
    r = client.get(url, **host, HTTP_COOKIE="x=1; portal_session=abc")
    assert r.status_code == 204 and r["X-Gateway-Cookie"] == "x=1"
