"""The TCP/UDP port mappings live in stream shards: nginx instances of their own, beside
the HTTP one, shard `port % GATEWAY_STREAM_SHARDS` holding each port.

Through the real nginx of a private gateway (2 shards): a port in every shard reaches
its container, and only through its own shard; a shard that is down fails the applies
that need it, naming it, and keeps the live files; started again, it is brought up to
date by the next apply. Which nginx an apply validates and reloads:
test_apply.py::test_only_the_servers_whose_files_changed_are_validated.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from networking import publishing
from networking.gateway import Nginx
from networking.models import Route
from tests.fixtures.networking import apply, create, tcp_exchange

pytestmark = [pytest.mark.gateway, pytest.mark.django_db(transaction=True)]

BANNER = b"SSH-2.0-OpenSSH_9.2 stand-in\r\n"


def shard_of(gw: Any, name: str) -> Nginx:
    return next(s for s in gw.servers() if isinstance(s, Nginx) and s.name == name)


def test_a_port_in_every_shard_reaches_its_container_through_that_shard_alone(
    gw_site: Any, local_gateway: Any, stand_ins: Any
) -> None:
    web = create(gw_site, "web")
    shards = local_gateway.settings["GATEWAY_STREAM_SHARDS"]
    mappings = [
        publishing.port_mapping_add(
            container=web, container_port=stand_ins.ssh(web.ip, BANNER), name=f"s{i}"
        )
        for i in range(shards)
    ]
    # Consecutive service ports: one in each shard.
    assert sorted(m.external_port % shards for m in mappings) == list(range(shards))
    assert apply(gw_site).status == "applied"
    bind = local_gateway.settings["GATEWAY_STREAM_BIND"]
    nginx_dir = local_gateway.paths().root / "nginx"
    for m in mappings:
        banner, echo = tcp_exchange(bind, m.external_port, b"hello")
        assert banner == BANNER and echo == b"echo:hello"
        line = f"listen {bind}:{m.external_port}; # mapping {m.pk}"
        holders = [i for i in range(shards) if line in (nginx_dir / f"stream-{i}.conf").read_text()]
        assert holders == [m.external_port % shards]
    assert "# mapping" not in (nginx_dir / "nginx.conf").read_text()


def test_a_shard_that_is_down_fails_the_applies_that_need_it_and_catches_up_when_started(
    gw_site: Any, local_gateway: Any, stand_ins: Any
) -> None:
    web = create(gw_site, "web")
    sshd = stand_ins.ssh(web.ip, BANNER)
    assert apply(gw_site).status == "applied"
    shards = local_gateway.settings["GATEWAY_STREAM_SHARDS"]
    paths = local_gateway.paths()
    live = paths.live_release()
    mapping = publishing.port_mapping_add(container=web, container_port=sshd, name="admin")
    Route.objects.filter(container=web).update(access="owner")  # the HTTP nginx's files too
    k = mapping.external_port % shards
    down = shard_of(local_gateway, f"stream-{k}")
    http = shard_of(local_gateway, "nginx")
    workers, revision = sorted(http.workers()), http.served()
    down.stop()
    try:
        rev = apply(gw_site)
        assert rev.status == "failed" and rev.error_code == "server_down", rev.error
        assert f"nginx (stream shard {k}) is not running on the gateway host" in rev.error
        assert f"stream-{k}.pid" in rev.error
        assert paths.live_release() == live  # swapped back
        # Found before any nginx was signalled: the HTTP one still serves the live files.
        assert sorted(http.workers()) == workers and http.served() == revision
    finally:
        down.start()  # on the live files: those before the mapping
    rev = apply(gw_site)
    assert rev.status == "applied", rev.error
    assert f"nginx (stream shard {k}) reloaded" in rev.actions
    bind = local_gateway.settings["GATEWAY_STREAM_BIND"]
    assert tcp_exchange(bind, mapping.external_port, b"again") == (BANNER, b"echo:again")
    # With nothing to change, a shard that is down still fails the apply: never "unchanged"
    # while a port is not served.
    down.stop()
    try:
        rev = apply(gw_site)
        assert rev.status == "failed" and rev.error_code == "server_down"
        assert f"nginx (stream shard {k}) is not running" in rev.error
    finally:
        down.start()
    assert apply(gw_site).status == "unchanged"


def test_a_shard_new_to_the_live_release_gets_its_files_for_its_start(
    gw_site: Any, local_gateway: Any, stand_ins: Any
) -> None:
    """As after an upgrade from one nginx (or a higher shard count): the live release has
    no file for the shard, which is not running. The apply installs its file rather than
    fail; the shard, started, serves it; until then an apply says it is not running."""
    web = create(gw_site, "web")
    sshd = stand_ins.ssh(web.ip, BANNER)
    mapping = publishing.port_mapping_add(container=web, container_port=sshd, name="admin")
    assert apply(gw_site).status == "applied"
    k = mapping.external_port % local_gateway.settings["GATEWAY_STREAM_SHARDS"]
    shard = shard_of(local_gateway, f"stream-{k}")
    shard.stop()
    paths = local_gateway.paths()
    release = paths.live_release()
    manifest = json.loads((release / "manifest.json").read_text())
    del manifest["files"][f"nginx/stream-{k}.conf"]
    manifest["content_hash"] = "the-layout-before"
    (release / "manifest.json").write_text(json.dumps(manifest))
    (release / "nginx" / f"stream-{k}.conf").unlink()

    rev = apply(gw_site)
    assert rev.status == "applied", rev.error
    assert f"nginx (stream shard {k}) not running: files installed for its start" in rev.actions
    assert rev.changed == [f"nginx/stream-{k}.conf"]
    assert apply(gw_site).error_code == "server_down"  # said until it runs
    shard.start()
    bind = local_gateway.settings["GATEWAY_STREAM_BIND"]
    assert tcp_exchange(bind, mapping.external_port, b"up") == (BANNER, b"echo:up")
    assert apply(gw_site).status == "unchanged"
