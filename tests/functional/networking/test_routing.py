"""Requests through the real nginx and names through the real dnsmasq, both started by
the tests on loopback; stand-in containers listen on their allocated 127.x addresses."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from networking import publishing
from tests.fixtures.networking import (
    apply,
    create,
    http,
    https,
    resolve,
    stream_conf,
    tcp_exchange,
)

pytestmark = [pytest.mark.gateway, pytest.mark.django_db(transaction=True)]


def serve(stand_ins: Any, container: Any, **route: Any) -> None:
    """A stand-in web server on the container's address, and its route pointed at it."""
    port = stand_ins.http(container.ip, container.hostname)
    publishing.route_update(route=container.routes.get(name=""), backend_port=port, **route)


def test_each_host_reaches_its_own_container_and_unknown_hosts_get_the_friendly_404(
    gw_site: Any, local_gateway: Any, stand_ins: Any
) -> None:
    web, shop = create(gw_site, "web"), create(gw_site, "shop")
    serve(stand_ins, web)
    serve(stand_ins, shop)
    rev = apply(gw_site)
    assert rev.status == "applied", rev.error
    for c in (web, shop):
        r = https(local_gateway, f"{c.hostname}.apps.example.test", "/some/path?q=1")
        assert r.status == 200
        seen = json.loads(r.data)
        assert seen["container"] == c.hostname and seen["path"] == "/some/path?q=1"
        assert seen["headers"]["X-Forwarded-Proto"] == "https"
        assert seen["headers"]["X-Forwarded-Host"] == f"{c.hostname}.apps.example.test"
        assert seen["headers"]["X-Forwarded-For"] == "127.0.0.1"
    # Upper case is the same host.
    assert json.loads(https(local_gateway, "WEB.apps.example.test").data)["container"] == "web"

    r = https(local_gateway, "nobody.apps.example.test")
    assert r.status == 404
    page = r.data.decode()
    assert "No container answers at this address" in page and "Cluster Portal" in page
    assert "New container" in page
    # A container's own 404 is passed through untouched (only nginx's own is replaced).
    assert https(local_gateway, "web.apps.example.test", "/missing").status == 200


def test_uploads_stream_through_and_port_80_redirects_except_acme(
    gw_site: Any, local_gateway: Any, stand_ins: Any
) -> None:
    web = create(gw_site, "web")
    serve(stand_ins, web)
    apply(gw_site)
    body = b"x" * (8 * 1024 * 1024)
    r = https(
        local_gateway,
        "web.apps.example.test",
        "/upload",
        method="POST",
        body=body,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert r.status == 200 and json.loads(r.data)["body_len"] == len(body)

    r = http(local_gateway, "web.apps.example.test", "/a?b=c")
    assert r.status == 301
    assert (
        r.headers["Location"]
        == f"https://web.apps.example.test:{local_gateway.ports['https']}/a?b=c"
    )
    from django.conf import settings

    challenge = f"{settings.GATEWAY_DIR}/acme/.well-known/acme-challenge/token-123"
    with open(challenge, "w") as fh:
        fh.write("token-123.key")
    r = http(local_gateway, "web.apps.example.test", "/.well-known/acme-challenge/token-123")
    assert r.status == 200 and r.data == b"token-123.key"


def test_https_presents_the_sites_wildcard_certificate(gw_site: Any, local_gateway: Any) -> None:
    import socket
    import ssl

    ctx = ssl.create_default_context(cafile=str(local_gateway.ca))
    with (
        socket.create_connection(("127.0.0.1", local_gateway.ports["https"]), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="anything.apps.example.test") as tls,
    ):
        cert = tls.getpeercert()
        assert ("DNS", "*.apps.example.test") in cert["subjectAltName"]
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
        assert tls.selected_alpn_protocol() is None  # no ALPN asked; HTTP/2 is offered via ALPN
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with (
        socket.create_connection(("127.0.0.1", local_gateway.ports["https"]), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="web.apps.example.test") as tls,
    ):
        assert tls.selected_alpn_protocol() == "h2"


def test_tcp_reaches_a_banner_first_server_through_the_stream_proxy(
    gw_site: Any, local_gateway: Any, stand_ins: Any
) -> None:
    web = create(gw_site, "web")
    sshd = stand_ins.ssh(web.ip, b"SSH-2.0-OpenSSH_9.2 stand-in\r\n")
    mapping = publishing.port_mapping_add(container=web, container_port=sshd, name="sshd")
    assert apply(gw_site).status == "applied"
    banner, echo = tcp_exchange(
        local_gateway.settings["GATEWAY_STREAM_BIND"], mapping.external_port, b"hello"
    )
    assert banner.startswith(b"SSH-2.0-") and echo == b"echo:hello"
    # The default SSH mapping is published too (port from the site's SSH range).
    ssh = web.port_mappings.get(name="ssh")
    assert gw_site.ssh_port_min <= ssh.external_port <= gw_site.ssh_port_max
    stream = stream_conf(local_gateway)
    assert f"TCP:{ssh.external_port} {web.ip}:22;" in stream


def test_dnsmasq_answers_the_wildcard_and_internal_names_and_learns_new_ones_without_a_restart(
    gw_site: Any, local_gateway: Any
) -> None:
    web = create(gw_site, "web")
    assert apply(gw_site).status == "applied"
    gw = gw_site.gateway_ip
    for name in ("anything.apps.example.test", "a.b.apps.example.test", "apps.example.test"):
        assert resolve(local_gateway, name) == [gw]
    assert resolve(local_gateway, "web.cluster.example.test") == [web.ip]
    assert resolve(local_gateway, "gateway.cluster.example.test") == [gw]
    assert resolve(local_gateway, "pve1.cluster.example.test") == ["127.0.0.1"]  # from its API URL
    assert resolve(local_gateway, "nothing.cluster.example.test") == []

    from networking.gateway import Dnsmasq
    from networking.render import GatewayOptions

    paths = local_gateway.paths()
    pid = Dnsmasq(paths, GatewayOptions.from_settings(paths.root)).pid()
    api = create(gw_site, "orders")
    rev = apply(gw_site)
    assert "dnsmasq re-read hosts and reservations (SIGHUP)" in rev.actions
    deadline = time.monotonic() + 2
    while (
        resolve(local_gateway, "orders.cluster.example.test") != [api.ip]
        and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    assert resolve(local_gateway, "orders.cluster.example.test") == [api.ip]
    assert Dnsmasq(paths, GatewayOptions.from_settings(paths.root)).pid() == pid  # not restarted
    reservations = (paths.root / "dnsmasq" / "dhcp-hosts").read_text()
    assert f"{api.mac},{api.ip},orders" in reservations
