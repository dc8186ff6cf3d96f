"""The renderer: a pure function of the site's state; one escaping path; real validators.

Property-based tests build states from arbitrary accepted inputs (and from hostile
strings, which must be refused or left out) and check that the real `nginx -t` and
`dnsmasq --test` accept every file, and that nothing but the intended entries appears.

The property-based case against the real `nginx -t` and `dnsmasq --test`; the others,
and the helpers they share, are in tests/unit/networking/test_render.py.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from networking.render import (
    GatewayOptions,
    HostEntry,
    MappingEntry,
    RouteEntry,
    SiteState,
    render,
)
from networking.validators import is_dns_label, validate_domain
from tests.conftest import need_binary
from tests.unit.networking.test_render import (
    DOMAIN,
    ENTRY_LINE,
    _label_ok,
    entry_lines,
    hostile,
    state,
)

MAPPING_LINE = re.compile(
    r"        (?:(?:TCP|UDP):\d+ \d+\.\d+\.\d+\.\d+:\d+|listen 127\.0\.0\.1:\d+(?: udp)?); "
    r"# mapping \d+"
)


# -- against the real tools ---------------------------------------------------------------------------
def write(r: object, out: Path) -> None:
    for rel, content in r.files.items():  # type: ignore[attr-defined]
        p = out / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)
    for d in ("run/logs", "run/tmp"):
        (out / d).mkdir(parents=True, exist_ok=True)


def check_with_tools(out: Path) -> None:
    """`nginx -t` of the HTTP nginx's file and of every stream shard's; `dnsmasq --test`."""
    nginx, dnsmasq = need_binary("nginx"), need_binary("dnsmasq")
    confs = [out / "nginx" / "nginx.conf", *sorted((out / "nginx").glob("stream-*.conf"))]
    assert len(confs) > 2
    for conf in confs:
        t = subprocess.run(
            [nginx, "-t", "-q", "-c", str(conf), "-p", f"{out}/nginx/"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert t.returncode == 0, (conf, t.stderr)
    d = subprocess.run(
        [dnsmasq, "--test", f"--conf-file={out}/dnsmasq/dnsmasq.conf"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert d.returncode == 0, d.stderr + d.stdout


@pytest.fixture(scope="module")
def test_cert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from networking.tls import make_wildcard_certificate

    d = tmp_path_factory.mktemp("tls")
    make_wildcard_certificate(d, [DOMAIN])
    return d


def _renderable(sub: str, domain: str) -> bool:
    # What the renderer itself admits: any DNS label (reserved names are an entry rule).
    return is_dns_label(sub) and len(sub) + 1 + len(domain) <= 253


def _domain_ok(value: str) -> bool:
    try:
        validate_domain(value)
    except ValidationError:
        return False
    return True


labels = st.from_regex(r"\A[a-z0-9](?:[a-z0-9-]{0,20}[a-z0-9])?\Z").filter(_label_ok)


domains = (
    st.lists(st.from_regex(r"\A[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?\Z"), min_size=2, max_size=4)
    .map(".".join)
    .filter(_domain_ok)
)


ips = st.ip_addresses(v=4).map(str)


@st.composite
def site_states(draw: st.DrawFn) -> tuple[SiteState, int]:
    domain = draw(domains)
    internal = draw(domains)
    subs = draw(st.lists(st.one_of(labels, hostile), max_size=12, unique=True))
    routes = tuple(
        RouteEntry(
            id=i,
            subdomain=s,
            ip=draw(ips),
            port=draw(st.integers(1, 65535)),
            protocol=draw(st.sampled_from(["http", "https"])),
            access=draw(st.sampled_from(["public", "users", "owner"])),
        )
        for i, s in enumerate(subs)
    )
    ports = draw(st.lists(st.integers(20000, 30000), max_size=8, unique=True))
    mappings = tuple(
        MappingEntry(
            id=i,
            protocol=draw(st.sampled_from(["tcp", "udp"])),
            external_port=p,
            ip=draw(ips),
            container_port=draw(st.integers(1, 65535)),
            name="svc",
            hostname="h",
        )
        for i, p in enumerate(ports)
    )
    names = draw(st.lists(st.one_of(labels, hostile), max_size=8, unique=True))
    hosts = tuple(
        HostEntry(
            kind="container",
            id=i,
            name=n,
            ip=draw(ips),
            mac=":".join(f"{b:02X}" for b in draw(st.binary(min_size=6, max_size=6))),
        )
        for i, n in enumerate(names)
    )
    forwarders = tuple(draw(st.lists(st.one_of(ips, hostile), max_size=3)))
    name = draw(st.text(max_size=40))
    valid = sum(1 for r in routes if _renderable(r.subdomain, domain))
    return SiteState(
        slug="local",
        name=name,
        domain=domain,
        internal_domain=internal,
        subnet="10.0.0.0/8",
        gateway_ip="10.0.0.1",
        dhcp_start="10.255.0.1",
        dhcp_end="10.255.0.200",
        forwarders=forwarders,
        routes=routes,
        mappings=mappings,
        hosts=hosts,
    ), valid


@pytest.mark.gateway
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=site_states(), dhcp=st.booleans())
def test_any_accepted_input_renders_files_the_real_tools_accept_and_nothing_more(
    data: tuple[SiteState, int],
    dhcp: bool,
    test_cert: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    s, valid_routes = data
    out = tmp_path_factory.mktemp("render")
    opts = GatewayOptions(
        root=out,
        tls_certificate=str(test_cert / "fullchain.pem"),
        tls_certificate_key=str(test_cert / "privkey.pem"),
        stream_bind="127.0.0.1",
        stream_shards=2,
        dhcp_enabled=dhcp,
    )
    r = render(s, opts)
    write(r, out)
    check_with_tools(out)
    # Nothing but the intended entries: every line of the entry files has its exact form.
    routes = entry_lines(r.files["nginx/routes.map"])
    assert len(routes) == valid_routes == r.counts["routes"]
    for path, form in ENTRY_LINE.items():
        for line in entry_lines(r.files[path]):
            assert form.fullmatch(line), (path, line)
    assert {ln.split()[0] for ln in routes} == {
        f"{x.subdomain}.{s.domain}" for x in s.routes if _renderable(x.subdomain, s.domain)
    }
    # The fixed files have the same shape as for a benign site: no directive or block added.
    benign = render(
        state(
            domain=s.domain,
            internal_domain=s.internal_domain,
            subnet=s.subnet,
            gateway_ip=s.gateway_ip,
            dhcp_start=s.dhcp_start,
            dhcp_end=s.dhcp_end,
        ),
        opts,
    )

    def shape(text: str) -> list[str]:
        return [ln.split()[0] for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]

    assert shape(r.files["nginx/nginx.conf"]) == shape(benign.files["nginx/nginx.conf"])
    keys = [ln.split("=")[0] for ln in entry_lines(r.files["dnsmasq/dnsmasq.conf"])]
    assert set(keys) <= {
        "port",
        "listen-address",
        "bind-interfaces",
        "no-resolv",
        "no-hosts",
        "no-poll",
        "domain-needed",
        "bogus-priv",
        "pid-file",
        "log-facility",
        "domain",
        "local",
        "address",
        "server",
        "addn-hosts",
        "dhcp-hostsfile",
        "dhcp-range",
        "dhcp-option",
        "dhcp-authoritative",
    }
    assert keys.count("server") == sum(
        1 for f in s.forwarders if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", f)
    )
    # Each shard: events, stream and its status server, and a map and a server if it has
    # mappings; every mapping line has its exact form.
    for shard in (r.files[f"nginx/stream-{i}.conf"] for i in range(opts.stream_shards)):
        mapped = [ln for ln in shard.splitlines() if ln.endswith(tuple("0123456789"))]
        assert all(MAPPING_LINE.fullmatch(ln) for ln in mapped), mapped
        assert shard.count("{") == shard.count("}") == (5 if mapped else 3)
