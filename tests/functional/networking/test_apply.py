"""Applying: coalescing, isolation of bad entries, keeping the last good files, no-op
applies, and 10,000 routes, against the real nginx and dnsmasq."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

from networking import publishing
from networking.gateway import GatewayPaths, Nginx
from networking.models import ConfigRevision, GatewayState, PortMapping, Route
from networking.render import GatewayOptions, RouteEntry, load_state, render
from networking.services import wait_for_apply
from portal.errors import UpstreamError
from tests.factories import UserFactory
from tests.fixtures.networking import apply, create, https, stream_conf

pytestmark = [pytest.mark.gateway, pytest.mark.django_db(transaction=True)]


def served(gw: Any, host: str) -> int:
    return int(https(gw, f"{host}.apps.example.test").status)


def routes_map(gw: Any) -> str:
    return (gw.paths().root / "nginx" / "routes.map").read_text()


def test_a_burst_of_100_creates_costs_a_few_applies_and_misses_none(
    site_127: Any, local_gateway: Any, gateway_worker: Any
) -> None:
    template = site_127.templates.get()
    owners = [UserFactory(username=f"burst{i}") for i in range(100)]
    errors: list[BaseException] = []
    start = threading.Barrier(20)

    def create_some(first: int) -> None:
        from containers import services as containers

        try:
            start.wait()
            for i in range(first, 100, 20):
                containers.container_create(owner=owners[i], hostname=f"b{i}", template=template)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=create_some, args=(n,)) for n in range(20)]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    burst = time.monotonic() - began
    assert not errors, errors
    final = GatewayState.objects.get(site=site_127).requested
    assert final >= 100
    wait_for_apply(site_127, final, timeout=30)
    revisions = list(ConfigRevision.objects.filter(site=site_127).order_by("id"))
    assert 1 <= len(revisions) <= 3, [(r.generation, r.status) for r in revisions]
    assert all(r.status == "applied" for r in revisions), [r.error for r in revisions]
    assert revisions[-1].generation == final and revisions[-1].counts["routes"] == 100
    text = routes_map(local_gateway)
    assert all(f"b{i}.apps.example.test " in text for i in range(100))
    print(f"100 creates in {burst:.2f} s -> {len(revisions)} applies")


def test_an_apply_with_nothing_new_reloads_nothing(gw_site: Any, local_gateway: Any) -> None:
    create(gw_site, "web")
    first = apply(gw_site)
    assert first.status == "applied" and "nginx reloaded" in first.actions
    paths = local_gateway.paths()
    nginx = Nginx(paths, GatewayOptions.from_settings(paths.root))
    workers = sorted(nginx.workers())
    live = paths.live_release()
    again = apply(gw_site)
    assert again.status == "unchanged" and again.actions == []
    assert again.content_hash == first.content_hash
    assert sorted(nginx.workers()) == workers and paths.live_release() == live


def test_a_broken_row_is_left_out_and_the_others_keep_being_served(
    gw_site: Any, local_gateway: Any, stand_ins: Any
) -> None:
    from tests.functional.networking.test_routing import serve

    web, shop = create(gw_site, "web"), create(gw_site, "shop")
    serve(stand_ins, web)
    serve(stand_ins, shop)
    assert apply(gw_site).status == "applied"
    # A row that got past validation (written by hand, or by an older version).
    Route.objects.filter(pk=shop.routes.get().pk).update(subdomain="shop;\n}server{listen 1")
    rev = apply(gw_site)
    assert rev.status == "applied", rev.error
    assert [(e["kind"], e["name"]) for e in rev.excluded] == [
        ("route", "shop;\n}server{listen 1.apps.example.test")
    ]
    assert "not a DNS label" in rev.excluded[0]["reason"]
    assert served(local_gateway, "web") == 200 and served(local_gateway, "shop") == 404
    assert "listen 1" not in routes_map(local_gateway)


def test_an_entry_nginx_rejects_is_identified_and_left_out(
    gw_site: Any, local_gateway: Any, stand_ins: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    from networking.gateway import apply as gateway
    from tests.functional.networking.test_routing import serve

    web, shop = create(gw_site, "web"), create(gw_site, "shop")
    serve(stand_ins, web)
    serve(stand_ins, shop)
    real = gateway.load_state

    def with_a_duplicate(site: Any) -> Any:
        # The one boundary stubbed: a second route for `web` (the database forbids it).
        state = real(site)
        dup = RouteEntry(
            id=999999, subdomain="web", ip="127.0.0.9", port=81, protocol="http", access="public"
        )
        return replace(state, routes=(*state.routes, dup))

    monkeypatch.setattr(gateway, "load_state", with_a_duplicate)
    rev = apply(gw_site)
    assert rev.status == "applied", rev.error
    assert [(e["kind"], e["id"]) for e in rev.excluded] == [("route", 999999)]
    assert rev.excluded[0]["reason"] == (
        'nginx -t: conflicting parameter "web.apps.example.test" in nginx/routes.map:4'
    )
    assert served(local_gateway, "web") == 200 and served(local_gateway, "shop") == 200


def test_when_validation_fails_the_last_good_files_keep_serving(
    gw_site: Any, local_gateway: Any, stand_ins: Any, settings: Any, tmp_path: Path
) -> None:
    from tests.functional.networking.test_routing import serve

    web = create(gw_site, "web")
    serve(stand_ins, web)
    good = apply(gw_site)
    paths = local_gateway.paths()
    live = paths.live_release()
    settings.GATEWAY_TLS_CERTIFICATE = str(tmp_path / "expired-and-gone.pem")
    late = create(gw_site, "late")
    serve(stand_ins, late)
    bad = apply(gw_site)
    assert bad.status == "failed" and bad.error_code == "validate"
    assert "nginx -t rejected the configuration; the live files keep serving" in bad.error
    assert "expired-and-gone.pem" in bad.error
    assert paths.live_release() == live and live is not None and good.content_hash[:12] in live.name
    assert served(local_gateway, "web") == 200 and served(local_gateway, "late") == 404
    generation = GatewayState.objects.get(site=gw_site).requested
    with pytest.raises(UpstreamError, match="could not apply the change: nginx -t rejected"):
        wait_for_apply(gw_site, generation, timeout=1)
    # Fixed: the next apply publishes what was waiting.
    settings.GATEWAY_TLS_CERTIFICATE = local_gateway.settings["GATEWAY_TLS_CERTIFICATE"]
    assert apply(gw_site).status == "applied"
    assert served(local_gateway, "late") == 200


def test_a_port_taken_on_the_gateway_host_leaves_only_its_mapping_out(
    gw_site: Any, local_gateway: Any
) -> None:
    web = create(gw_site, "web")
    bind = local_gateway.settings["GATEWAY_STREAM_BIND"]
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind((bind, gw_site.service_port_min))  # the next service port to be handed out
    squatter.listen()
    try:
        mapping = publishing.port_mapping_add(container=web, container_port=8443, name="admin")
        assert mapping.external_port == gw_site.service_port_min
        rev = apply(gw_site)
        assert rev.status == "applied", rev.error
        assert [(e["kind"], e["id"]) for e in rev.excluded] == [("mapping", mapping.pk)]
        assert "is in use on the gateway host" in rev.excluded[0]["reason"]
        stream = stream_conf(local_gateway)
        ssh = web.port_mappings.get(name="ssh").external_port
        assert f"{bind}:{ssh};" in stream and f":{mapping.external_port};" not in stream
    finally:
        squatter.close()
    assert apply(gw_site).excluded == []  # free again: published at the next apply


def test_10000_routes_render_validate_and_reload(
    gw_site: Any, local_gateway: Any, stand_ins: Any
) -> None:
    import ipaddress

    from containers.models import Container

    template, node = gw_site.templates.get(), gw_site.nodes.first()
    owner = UserFactory(username="many")
    base = int(ipaddress.IPv4Address(gw_site.subnet.split("/")[0])) + 256
    containers = [
        Container(
            site=gw_site,
            node=node,
            vmid=1000 + i,
            hostname=f"ct{i}",
            owner=owner,
            template=template,
            cores=1,
            memory_mib=512,
            swap_mib=0,
            disk_gib=4,
            ip=str(ipaddress.IPv4Address(base + i)),
            mac=f"02:01:{(base + i) >> 24 & 255:02X}:{(base + i) >> 16 & 255:02X}:"
            f"{(base + i) >> 8 & 255:02X}:{(base + i) & 255:02X}",
        )
        for i in range(10_000)
    ]
    Container.objects.bulk_create(containers, batch_size=2000)
    ids = dict(Container.objects.filter(site=gw_site).values_list("hostname", "id"))
    Route.objects.bulk_create(
        [
            Route(
                site=gw_site,
                container_id=ids[f"ct{i}"],
                subdomain=f"ct{i}",
                backend_port=80,
                access="public",  # fetched below without a login
            )
            for i in range(10_000)
        ],
        batch_size=2000,
    )
    PortMapping.objects.bulk_create(
        [
            PortMapping(
                site=gw_site,
                container_id=ids[f"ct{i}"],
                name="ssh",
                external_port=gw_site.ssh_port_min + i,
                container_port=22,
            )
            for i in range(10_000)
        ],
        batch_size=2000,
    )
    probe = Container.objects.get(hostname="ct7777")
    publishing.route_update(
        route=probe.routes.get(), backend_port=stand_ins.http(probe.ip, "ct7777")
    )

    rev = apply(gw_site)
    assert rev.status == "applied", (rev.error, rev.excluded[:3])
    assert rev.counts["routes"] == 10_000 and rev.counts["port_mappings"] == 10_000, rev.excluded[
        :3
    ]
    print(f"10,000 routes: {rev.duration_ms} ms {rev.timings}")
    assert rev.duration_ms < 10_000, rev.timings  # about 1 s on a 2-core machine
    assert served(local_gateway, "ct7777") == 200
    assert served(local_gateway, "ct10000") == 404
    # Back to a small site, so the rest of the session's nginx is not carrying 10,000 ports.
    Container.objects.filter(site=gw_site).delete()
    assert apply(gw_site).counts["routes"] == 0


def test_paths_are_a_symlinked_tree_swapped_in_one_rename(gw_site: Any, local_gateway: Any) -> None:
    create(gw_site, "web")
    apply(gw_site)
    paths: GatewayPaths = local_gateway.paths()
    assert paths.current.is_symlink() and (paths.root / "nginx").is_symlink()
    assert (paths.root / "nginx").resolve() == paths.live_release() / "nginx"  # type: ignore[operator]
    releases = [p for p in paths.releases.iterdir() if p.is_dir()]
    assert len(releases) <= 5 and list(paths.staging.iterdir()) == []


def test_live_files_nginx_does_not_serve_are_reloaded(
    gw_site: Any, local_gateway: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    create(gw_site, "web")
    apply(gw_site)
    real = Nginx.served
    calls = {"n": 0}

    def stale_once(self: Nginx) -> str | None:
        # As if an earlier apply died between the swap and the reload.
        calls["n"] += 1
        return "an-older-revision" if calls["n"] == 1 else real(self)

    monkeypatch.setattr(Nginx, "served", stale_once)
    rev = apply(gw_site)
    assert rev.status == "applied" and "nginx reloaded" in rev.actions
    assert "nginx served an older revision than the live files" in rev.actions


def test_a_server_that_is_down_fails_the_apply_as_transient_and_keeps_the_files(
    gw_site: Any, local_gateway: Any, settings: Any, tmp_path: Path
) -> None:
    from portal.errors import UpstreamUnavailable

    create(gw_site, "web")
    apply(gw_site)
    live = local_gateway.paths().live_release()
    settings.GATEWAY_NGINX_PID_FILE = str(tmp_path / "no-such.pid")  # as if nginx had died
    create(gw_site, "shop")
    rev = apply(gw_site)
    assert rev.status == "failed" and rev.error_code == "server_down"
    assert "nginx is not running on the gateway host" in rev.error
    assert local_gateway.paths().live_release() == live  # swapped back
    generation = GatewayState.objects.get(site=gw_site).requested
    with pytest.raises(UpstreamUnavailable, match="nginx is not running"):
        wait_for_apply(gw_site, generation, timeout=1)
    settings.GATEWAY_NGINX_PID_FILE = ""
    assert apply(gw_site).status == "applied"


def test_a_validator_refusing_while_the_other_accepts_keeps_the_live_files(
    gw_site: Any, local_gateway: Any, stand_ins: Any, settings: Any
) -> None:
    from tests.functional.networking.test_routing import serve

    web = create(gw_site, "web")
    serve(stand_ins, web)
    apply(gw_site)
    live = local_gateway.paths().live_release()
    settings.GATEWAY_DNS_PORT = 70000  # dnsmasq --test refuses it; nginx -t does not read it
    late = create(gw_site, "late")
    serve(stand_ins, late)
    bad = apply(gw_site)
    assert bad.status == "failed" and bad.error_code == "validate"
    assert bad.error.startswith("dnsmasq --test rejected the configuration") and "line" in bad.error
    assert "nginx -t" not in bad.error and {"nginx -t", "dnsmasq --test"} <= set(bad.timings)
    assert local_gateway.paths().live_release() == live
    assert served(local_gateway, "web") == 200 and served(local_gateway, "late") == 404
    settings.GATEWAY_DNS_PORT = local_gateway.settings["GATEWAY_DNS_PORT"]
    assert apply(gw_site).status == "applied" and served(local_gateway, "late") == 200


def test_only_the_servers_whose_files_changed_are_validated(
    gw_site: Any, local_gateway: Any, stand_ins: Any
) -> None:
    from networking.models import Node
    from tests.functional.networking.test_routing import serve

    web = create(gw_site, "web")
    serve(stand_ins, web)
    apply(gw_site)
    # A route's access: nginx's files only.
    Route.objects.filter(container=web).update(access="users")
    rev = apply(gw_site)
    assert rev.status == "applied" and rev.changed == ["nginx/revision.conf", "nginx/routes.map"]
    assert "nginx -t" in rev.timings and "dnsmasq --test" not in rev.timings
    # A node's address: dnsmasq's hosts alone; no nginx validated or reloaded.
    Node.objects.filter(site=gw_site).update(ip="127.0.0.9")
    rev = apply(gw_site)
    assert rev.status == "applied" and rev.changed == ["dnsmasq/hosts"]
    assert "dnsmasq --test" in rev.timings and "nginx validation" not in rev.timings
    assert not any("nginx" in action for action in rev.actions), rev.actions
    assert "127.0.0.9 " in (local_gateway.paths().root / "dnsmasq" / "hosts").read_text()
    # A new port: the stream shard of its port alone (port mod 2 in a private gateway).
    mapping = publishing.port_mapping_add(container=web, container_port=8443, name="admin")
    shard = mapping.external_port % local_gateway.settings["GATEWAY_STREAM_SHARDS"]
    rev = apply(gw_site)
    assert rev.status == "applied" and rev.changed == [f"nginx/stream-{shard}.conf"]
    validated = {k for k in rev.timings if k.startswith(("nginx -t", "dnsmasq"))}
    assert validated == {f"nginx -t stream-{shard}"}, rev.timings
    assert rev.actions == [f"nginx (stream shard {shard}) reloaded"]
    paths = local_gateway.paths()
    options = GatewayOptions.from_settings(paths.root)
    revisions = render(load_state(gw_site), options).revisions
    assert {n.name: n.served() for n in Nginx.every(paths, options)} == revisions
    # Forced: every server, whatever changed.
    rev = apply(gw_site, force=True)
    shards = {f"nginx -t stream-{i}" for i in range(options.stream_shards)}
    assert {"nginx -t", "dnsmasq --test", *shards} <= set(rev.timings)


def test_pruning_during_the_reload_spares_the_release_a_rollback_needs(
    gw_site: Any, local_gateway: Any, settings: Any, tmp_path: Path
) -> None:
    settings.GATEWAY_KEEP_RELEASES = 1
    paths = local_gateway.paths()
    for name in ("web", "shop"):
        create(gw_site, name)
        assert apply(gw_site).status == "applied"
    live = paths.live_release()
    releases = {p for p in paths.releases.iterdir() if p.is_dir()}
    assert live in releases and len(releases) <= 2  # the live one, and the one before it
    settings.GATEWAY_NGINX_PID_FILE = str(tmp_path / "no-such.pid")  # the reload fails
    create(gw_site, "late")
    rev = apply(gw_site)
    assert rev.status == "failed" and rev.error_code == "server_down"
    assert paths.live_release() == live and live is not None and live.is_dir()
    assert (paths.root / "nginx" / "routes.map").is_file()
    settings.GATEWAY_NGINX_PID_FILE = ""
    assert apply(gw_site).status == "applied"
    assert len([p for p in paths.releases.iterdir() if p.is_dir()]) <= 2
