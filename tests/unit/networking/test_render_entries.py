"""The entries' fast path: column checks and lines built in Python give the very files the
per-entry checks and the templates' loops gave.

- `conf_values` is `conf_value` for a column: same admissions, same refusal.
- The column checks are never looser than the per-entry ones, and rendering with them
  gives the same result as rendering with the per-entry checks alone, for any entries.
- The entry files of a small site, byte for byte as the Jinja2 loops wrote them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from networking import render_entries as entries
from networking.render import (
    GatewayOptions,
    HostEntry,
    MappingEntry,
    RouteEntry,
    SiteState,
    UnsafeValue,
    conf_value,
    render,
)

OPTIONS = GatewayOptions(
    root=Path("/srv/gw"),
    tls_certificate="/tls/c.pem",
    tls_certificate_key="/tls/k.pem",
    stream_bind="10.15.0.1",
)


def state(**fields: Any) -> SiteState:
    base: dict[str, Any] = {
        "slug": "local",
        "name": "Local",
        "domain": "apps.example.test",
        "internal_domain": "cluster.example.test",
        "subnet": "10.15.0.0/16",
        "gateway_ip": "10.15.0.1",
        "dhcp_start": "10.15.255.0",
        "dhcp_end": "10.15.255.254",
        **fields,
    }
    return SiteState(**base)


@contextlib.contextmanager
def per_entry_checks_only() -> Iterator[None]:
    """Every column check says no: each entry is checked on its own, as before."""
    with (
        mock.patch.object(entries, "_routes_fine", return_value=False),
        mock.patch.object(entries, "_mappings_fine", return_value=False),
        mock.patch.object(entries, "_hosts_fine", return_value=False),
    ):
        yield


def outcome(s: SiteState, exclude: tuple[tuple[str, int], ...] = ()) -> dict[str, Any]:
    try:
        r = render(s, OPTIONS, exclude=exclude)
    except UnsafeValue as exc:
        return {"refused": str(exc)}
    return {
        "files": r.files,
        "hashes": r.hashes,
        "excluded": r.excluded,
        "counts": r.counts,
        "stream_ports": r.stream_ports,
        "route_names": r.route_names,
    }


# -- conf_values ---------------------------------------------------------------------------------
hostile_values = st.one_of(
    st.text(max_size=12),
    st.from_regex(r"\A[a-z0-9.:|-]{1,20}\Z"),
    st.sampled_from(["a\nb", "a b", "", "é", "x" * 4097, "x" * 4096, "$host", "a;b", "\n"]),
    st.integers(),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False),
)


@given(values=st.lists(hostile_values, max_size=8))
def test_conf_values_admits_and_refuses_exactly_what_conf_value_does(values: list[Any]) -> None:
    refused = []
    for v in values:
        try:
            conf_value(v)
        except UnsafeValue as exc:
            refused.append(str(exc))
    if not refused:
        entries.conf_values(values)
        return
    with pytest.raises(UnsafeValue) as caught:
        entries.conf_values(values)
    assert str(caught.value) == refused[0]


@given(values=st.lists(st.from_regex(r"\A[a-z0-9.:|-]{1,20}\Z"), min_size=1, max_size=8))
def test_a_newline_inside_a_value_is_refused_even_between_good_tokens(values: list[str]) -> None:
    with pytest.raises(UnsafeValue):
        entries.conf_values([*values[:-1], values[-1] + "\nserver{"])


# -- the column checks ---------------------------------------------------------------------------
good_labels = st.from_regex(r"\A[a-z0-9](?:[a-z0-9-]{0,8}[a-z0-9])?\Z")
labels = st.one_of(
    good_labels,
    good_labels,
    st.sampled_from(["xn--bcher-kva", "xn--abc", "Web", "w b", "", "-a", "a" * 64, "gateway"]),
    st.text(max_size=6),
)
ips = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=4).map(str),
    st.sampled_from(["10.15.1.300", "", "010.1.1.1", "::1", "1.2.3.4\n"]),
)
ports = st.one_of(st.integers(1, 65535), st.sampled_from([0, 65536, True, 1023, 1024]))
macs = st.one_of(
    st.binary(min_size=6, max_size=6).map(lambda b: ":".join(f"{x:02X}" for x in b)),
    st.binary(min_size=6, max_size=6).map(lambda b: ":".join(f"{x:02x}" for x in b)),
    st.sampled_from(["", "not-a-mac", "02:01:0A:0F:01:0\n", None]),
)


good_ips = st.ip_addresses(v=4).map(str)
good_macs = st.binary(min_size=6, max_size=6).map(lambda b: ":".join(f"{x:02x}" for x in b))
upper_macs = good_macs.map(str.upper)


@st.composite
def site_states(draw: st.DrawFn) -> SiteState:
    """Half the time every entry is fine (whole columns pass); otherwise some are hostile."""
    n = draw(st.integers(0, 6))
    fine = draw(st.booleans())

    def pick(good: st.SearchStrategy[Any], any_: st.SearchStrategy[Any]) -> Any:
        return draw(good if fine else any_)

    names = draw(st.lists(good_labels, min_size=n, max_size=n, unique=True))
    external = draw(st.lists(st.integers(1024, 65535), min_size=n, max_size=n, unique=True))
    return state(
        routes=tuple(
            RouteEntry(
                id=i,
                subdomain=pick(st.just(names[i]), labels),
                ip=pick(good_ips, ips),
                port=pick(st.integers(1, 65535), ports),
                protocol=pick(
                    st.sampled_from(["http", "https"]), st.sampled_from(["http", "gopher"])
                ),
                access=pick(
                    st.sampled_from(["public", "users", "owner"]),
                    st.sampled_from(["owner", "anyone"]),
                ),
            )
            for i in range(n)
        ),
        mappings=tuple(
            MappingEntry(
                id=i,
                protocol=pick(st.sampled_from(["tcp", "udp"]), st.sampled_from(["tcp", "sctp"])),
                external_port=pick(
                    st.just(external[i]), st.one_of(st.integers(20000, 20003), ports)
                ),
                ip=pick(good_ips, ips),
                container_port=pick(st.integers(1, 65535), ports),
                name="svc",
                hostname=f"h{i}",
            )
            for i in range(n)
        ),
        hosts=tuple(
            HostEntry(
                kind=draw(st.sampled_from(["node", "container"])),
                id=i,
                name=pick(st.just(names[i]), labels),
                ip=pick(good_ips, ips),
                mac=pick(st.one_of(st.sampled_from(["", None]), good_macs, upper_macs), macs),
            )
            for i in range(n)
        ),
    )


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(s=site_states())
def test_a_column_passes_only_if_every_entry_would(s: SiteState) -> None:
    if entries._routes_fine(s.routes, s.domain):
        assert all(entries._check_route(r, s.domain) is None for r in s.routes)
    if entries._mappings_fine(s.mappings):
        assert all(entries._check_mapping(m) is None for m in s.mappings)
        assert len({(m.protocol, m.external_port) for m in s.mappings}) == len(s.mappings)
    if entries._hosts_fine(s.hosts):
        assert all(entries._check_host(h) is None for h in s.hosts)
        names = [h.name for h in s.hosts]
        assert "gateway" not in names and len(set(names)) == len(names)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(s=site_states(), leave_out=st.booleans())
def test_columns_and_entries_render_the_same_files(s: SiteState, leave_out: bool) -> None:
    exclude = (("route", 0), ("mapping", 1), ("node", 0), ("container", 1)) if leave_out else ()
    fast = outcome(s, exclude)
    with per_entry_checks_only():
        assert outcome(s, exclude) == fast


def test_a_site_of_fine_entries_takes_the_column_checks() -> None:
    s = small_site()
    with mock.patch.object(entries, "_check_route", side_effect=AssertionError("per entry")):
        assert render(s, OPTIONS).counts["routes"] == 2
    with per_entry_checks_only():
        assert outcome(s) == outcome(small_site())


# -- byte for byte ------------------------------------------------------------------------------
def small_site() -> SiteState:
    return state(
        routes=(
            RouteEntry(2, "api-web", "10.15.1.3", 8080, "https", "owner"),
            RouteEntry(1, "web", "10.15.1.2", 80, "http", "public"),
        ),
        mappings=(
            MappingEntry(1, "tcp", 10000, "10.15.1.2", 22, "ssh", "web"),
            MappingEntry(2, "udp", 10001, "10.15.1.3", 53, "dns", "api-web"),
        ),
        hosts=(
            HostEntry("node", 1, "pve1", "10.15.0.11"),
            HostEntry("container", 2, "api-web", "10.15.1.3", "02:01:0A:0F:01:03"),
            HostEntry("container", 1, "web", "10.15.1.2", "02:01:0a:0f:01:02"),
        ),
    )


# As the templates' Jinja2 loops wrote them before the lines were built in Python.
EXPECTED = {
    "nginx/routes.map": (
        "# host scheme|backend|access; the comment names the route (for error reports).\n"
        "api-web.apps.example.test https|10.15.1.3:8080|owner; # route 2\n"
        "web.apps.example.test http|10.15.1.2:80|public; # route 1\n"
    ),
    "dnsmasq/hosts": (
        "# ip fqdn shortname: the gateway, the nodes and the containers of the site.\n"
        "10.15.0.1 gateway.cluster.example.test gateway\n"
        "10.15.0.11 pve1.cluster.example.test pve1\n"
        "10.15.1.3 api-web.cluster.example.test api-web\n"
        "10.15.1.2 web.cluster.example.test web\n"
    ),
    "dnsmasq/dhcp-hosts": "02:01:0A:0F:01:03,10.15.1.3,api-web\n02:01:0A:0F:01:02,10.15.1.2,web\n",
}


# The stream shards' entry blocks (port mod 8: 10000 in shard 0, 10001 in shard 1).
EXPECTED_STREAM = {
    "nginx/stream-0.conf": (
        '    map "$protocol:$server_port" $gw_stream_backend {\n'
        '        default "";\n'
        "        TCP:10000 10.15.1.2:22; # mapping 1\n"
        "    }\n"
        "\n"
        "    server {\n"
        "        listen 10.15.0.1:10000; # mapping 1\n"
        "        proxy_pass $gw_stream_backend;\n"
    ),
    "nginx/stream-1.conf": (
        '        default "";\n'
        "        UDP:10001 10.15.1.3:53; # mapping 2\n"
        "    }\n"
        "\n"
        "    server {\n"
        "        listen 10.15.0.1:10001 udp; # mapping 2\n"
        "        proxy_pass $gw_stream_backend;\n"
    ),
}


def test_the_entry_files_are_written_byte_for_byte_as_before() -> None:
    files = render(small_site(), OPTIONS).files
    assert {path: files[path] for path in EXPECTED} == EXPECTED
    for path, block in EXPECTED_STREAM.items():
        assert block in files[path], files[path]
    assert all(" # mapping " not in files[f"nginx/stream-{i}.conf"] for i in range(2, 8))


def test_an_empty_site_writes_no_entry_lines() -> None:
    files = render(state(), OPTIONS).files
    assert files["nginx/routes.map"] == EXPECTED["nginx/routes.map"].split("\n", 1)[0] + "\n"
    shards = [files[f"nginx/stream-{i}.conf"] for i in range(OPTIONS.stream_shards)]
    assert not any(" # mapping " in f or "$gw_stream_backend" in f for f in shards)
    assert files["dnsmasq/dhcp-hosts"] == ""
    assert files["dnsmasq/hosts"].endswith("gateway.cluster.example.test gateway\n")
