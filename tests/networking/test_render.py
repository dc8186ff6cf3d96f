"""The renderer: a pure function of the site's state; one escaping path; real validators.

Property-based tests build states from arbitrary accepted inputs (and from hostile
strings, which must be refused or left out) and check that the real `nginx -t` and
`dnsmasq --test` accept every file, and that nothing but the intended entries appears.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from networking.render import (
    GatewayOptions,
    HostEntry,
    MappingEntry,
    RenderError,
    RouteEntry,
    SiteState,
    UnsafeValue,
    conf_value,
    render,
)
from networking.validators import is_dns_label, validate_domain, validate_hostname
from tests.conftest import need_binary

DOMAIN = "apps.example.test"


def state(**fields: object) -> SiteState:
    base: dict[str, object] = dict(
        slug="local",
        name="Local",
        domain=DOMAIN,
        internal_domain="cluster.example.test",
        subnet="10.15.0.0/16",
        gateway_ip="10.15.0.1",
        dhcp_start="10.15.255.0",
        dhcp_end="10.15.255.254",
    )
    base.update(fields)
    return SiteState(**base)  # type: ignore[arg-type]


def options(tmp: Path, **fields: object) -> GatewayOptions:
    cert = tmp / "tls"
    base: dict[str, object] = {
        "root": tmp / "out",
        "tls_certificate": str(cert / "fullchain.pem"),
        "tls_certificate_key": str(cert / "privkey.pem"),
        **fields,
    }
    return GatewayOptions(**base)  # type: ignore[arg-type]


def route(i: int, sub: str, **kw: object) -> RouteEntry:
    return RouteEntry(
        **{
            "id": i,
            "subdomain": sub,
            "ip": f"10.15.1.{i % 250 + 1}",
            "port": 80,
            "protocol": "http",
            "access": "public",
            **kw,
        }
    )  # type: ignore[arg-type]


def mapping(i: int, port: int, **kw: object) -> MappingEntry:
    return MappingEntry(
        **{
            "id": i,
            "protocol": "tcp",
            "external_port": port,
            "ip": "10.15.1.2",
            "container_port": 22,
            "name": "ssh",
            "hostname": f"h{i}",
            **kw,
        }
    )  # type: ignore[arg-type]


ENTRY_LINE = {
    "nginx/routes.map": re.compile(
        r"^(?P<host>[a-z0-9.-]+) (?:http|https)\|\d{1,3}(?:\.\d{1,3}){3}:\d{1,5}\|(?:public|users|owner); "
        r"# route \d+$"
    ),
    "dnsmasq/hosts": re.compile(r"^\d{1,3}(?:\.\d{1,3}){3} [a-z0-9.-]+ [a-z0-9-]+$"),
    "dnsmasq/dhcp-hosts": re.compile(
        r"^[0-9A-F]{2}(?::[0-9A-F]{2}){5},\d{1,3}(?:\.\d{1,3}){3},[a-z0-9-]+$"
    ),
}


def entry_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln and not ln.startswith("#")]


# -- the escaping path --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value",
    [
        "a;b",
        "a b",
        "a\nb",
        "a{",
        "}",
        '"x"',
        "'x'",
        "$host",
        "a#b",
        "back\\slash",
        "w\u0435b",  # a Cyrillic lookalike
        "",
        "\t",
        "a\rb",
        True,
        None,
        1.5,
        "x" * 5000,
    ],
)
def test_conf_value_refuses_anything_that_is_not_one_plain_token(value: object) -> None:
    with pytest.raises(UnsafeValue):
        conf_value(value)


def test_conf_value_admits_tokens_and_ints() -> None:
    assert conf_value("10.15.1.2:8080") == "10.15.1.2:8080"
    assert conf_value("/etc/letsencrypt/live/apps.example.org/fullchain.pem").endswith(".pem")
    assert conf_value("[::1]:18080") == "[::1]:18080"
    assert conf_value(443) == "443"


def test_render_is_pure_and_deterministic(tmp_path: Path) -> None:
    s = state(
        routes=(route(1, "web"), route(2, "api-web", port=8080, protocol="https", access="owner")),
        mappings=(mapping(1, 10000), mapping(2, 10001, protocol="udp", container_port=53)),
        hosts=(
            HostEntry(kind="container", id=1, name="web", ip="10.15.1.2", mac="02:01:0A:0F:01:02"),
        ),
    )
    a, b = render(s, options(tmp_path)), render(s, options(tmp_path))
    assert a.files == b.files and a.content_hash == b.content_hash
    assert (
        "web.apps.example.test http|10.15.1.2:80|public; # route 1" in a.files["nginx/routes.map"]
    )
    assert (
        "api-web.apps.example.test https|10.15.1.3:8080|owner; # route 2"
        in a.files["nginx/routes.map"]
    )
    stream = a.files["nginx/stream.conf"]
    assert (
        "TCP:10000 10.15.1.2:22; # mapping 1" in stream
        and "UDP:10001 10.15.1.2:53; # mapping 2" in stream
    )
    assert re.search(r"listen 127\.0\.0\.1:10001 udp;", stream)
    assert a.files["dnsmasq/dhcp-hosts"] == "02:01:0A:0F:01:02,10.15.1.2,web\n"
    assert "10.15.1.2 web.cluster.example.test web" in a.files["dnsmasq/hosts"]
    conf = a.files["dnsmasq/dnsmasq.conf"]
    assert "address=/apps.example.test/10.15.0.1" in conf and "dhcp-range" not in conf
    with_dhcp = render(s, options(tmp_path, dhcp_enabled=True)).files["dnsmasq/dnsmasq.conf"]
    assert "dhcp-range=10.15.255.0,10.15.255.254,255.255.0.0,24h" in with_dhcp
    assert "dhcp-option=option:router,10.15.0.1" in with_dhcp
    # Only the site-wide file changes with site settings; hosts files with containers.
    fewer = render(state(), options(tmp_path))
    assert fewer.files["dnsmasq/dnsmasq.conf"] == conf


def test_bad_entries_are_left_out_with_a_reason_and_the_rest_rendered(tmp_path: Path) -> None:
    s = state(
        routes=(
            route(1, "web"),
            route(2, "evil;\n}"),
            route(3, "ok", ip="10.15.1.300"),
            route(4, "p", port=0),
            route(5, "q", protocol="gopher"),
        ),
        mappings=(mapping(1, 10000), mapping(2, 80), mapping(3, 10000)),
        hosts=(
            HostEntry(kind="container", id=1, name="web", ip="10.15.1.2", mac="02:01:0A:0F:01:02"),
            HostEntry(kind="container", id=2, name="x y", ip="10.15.1.3"),
            HostEntry(kind="container", id=3, name="m", ip="10.15.1.4", mac="not-a-mac"),
        ),
        forwarders=("1.1.1.1", "8.8.8.8\nport=53", "9.9.9.9#5353"),
    )
    r = render(s, options(tmp_path))
    left = {(e["kind"], e["id"]): e["reason"] for e in r.excluded}
    assert set(left) == {
        ("route", 2),
        ("route", 3),
        ("route", 4),
        ("route", 5),
        ("mapping", 2),
        ("mapping", 3),
        ("host", 2),
        ("host", 3),
        ("forwarder", 1),
    }
    assert "not a DNS label" in left[("route", 2)] and "mapped twice" in left[("mapping", 3)]
    assert r.counts["routes"] == 1 and r.counts["port_mappings"] == 1
    assert "evil" not in "".join(r.files.values())
    assert "server=1.1.1.1 # forwarder 0" in r.files["dnsmasq/dnsmasq.conf"]
    assert "server=9.9.9.9#5353 # forwarder 2" in r.files["dnsmasq/dnsmasq.conf"]


def test_a_bad_setting_fails_the_whole_render_and_names_itself(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match="GATEWAY_TLS_CERTIFICATE"):
        render(state(), options(tmp_path, tls_certificate="/etc/x; include /etc/shadow"))
    with pytest.raises(RenderError, match="SESSION_COOKIE_NAME"):
        render(state(), options(tmp_path, session_cookie="a|b"))
    with pytest.raises(RenderError, match="domain"):
        render(state(domain="evil.test/1.2.3.4"), options(tmp_path))


def test_the_html_pages_escape_the_site_name(tmp_path: Path) -> None:
    r = render(
        state(name="<script>alert(1)</script>"), options(tmp_path, portal_name="Portal & Co")
    )
    page = r.files["nginx/html/404.html"]
    assert "<script>" not in page and "&lt;script&gt;" in page and "Portal &amp; Co" in page
    assert "No container answers at this address" in page and "New container" in page
    assert "portalctl" not in page  # nothing that does not exist yet


def test_the_map_hash_buckets_fit_the_longest_name(tmp_path: Path) -> None:
    long_domain = ".".join(["a" * 60] * 3) + ".test"
    r = render(state(domain=long_domain, routes=(route(1, "b" * 63),)), options(tmp_path))
    size = int(re.search(r"map_hash_bucket_size (\d+);", r.files["nginx/nginx.conf"])[1])  # type: ignore[index]
    assert size >= 63 + 1 + len(long_domain) + 32


# -- against the real tools ---------------------------------------------------------------------------
def write(r: object, out: Path) -> None:
    for rel, content in r.files.items():  # type: ignore[attr-defined]
        p = out / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)
    for d in ("run/logs", "run/tmp"):
        (out / d).mkdir(parents=True, exist_ok=True)


def check_with_tools(out: Path) -> None:
    nginx, dnsmasq = need_binary("nginx"), need_binary("dnsmasq")
    t = subprocess.run(
        [nginx, "-t", "-q", "-c", f"{out}/nginx/nginx.conf", "-p", f"{out}/nginx/"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert t.returncode == 0, t.stderr
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


def _label_ok(value: str) -> bool:
    try:
        validate_hostname(value)
    except ValidationError:
        return False
    return True


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
# Anything at all, including what an attacker would try: checked at entry, left out here.
hostile = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "a;b",
            "x\ninclude /etc/passwd;",
            "}",
            "{",
            '"',
            "$host",
            "#",
            "a b",
            "w\u0435b",
            "x}server{listen 1;",
            "a\r\nb",
            "\u2028",
            "..",
            "-a",
            "a-",
        ]
    ),
)


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
    stream = r.files["nginx/stream.conf"]
    assert stream.count("{") == stream.count("}") == (2 if s.mappings else 0)


@given(value=hostile)
def test_hostile_names_are_refused_where_they_enter(value: str) -> None:
    assume(not _label_ok(value))
    with pytest.raises(ValidationError):
        validate_hostname(value)


def test_the_workers_user_is_written_only_when_set(tmp_path: Path) -> None:
    plain = render(state(), options(tmp_path)).files
    assert "\nuser " not in plain["nginx/nginx.conf"]
    assert "\nuser=" not in plain["dnsmasq/dnsmasq.conf"]
    mine = render(state(), options(tmp_path, worker_user="root")).files
    assert "\nuser root;\n" in mine["nginx/nginx.conf"]
    assert "\nuser=root\n" in mine["dnsmasq/dnsmasq.conf"]
    with pytest.raises(RenderError, match="GATEWAY_WORKER_USER"):
        render(state(), options(tmp_path, worker_user="root;\ninclude /etc/shadow"))


def test_the_404_page_names_the_public_port(tmp_path: Path) -> None:
    page = render(state(), options(tmp_path, https_listen=("127.0.0.1:18443",))).files
    assert "apps.example.test:18443/" in page["nginx/html/404.html"]
    # On 443 no port is written anywhere (an empty value once failed the whole render).
    page = render(state(), options(tmp_path, https_listen=("0.0.0.0:443",))).files
    assert ".apps.example.test/</code>" in page["nginx/html/404.html"]
    assert "return 301 https://$host$request_uri;" in page["nginx/nginx.conf"]
