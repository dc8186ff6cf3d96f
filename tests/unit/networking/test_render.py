"""The renderer: a pure function of the site's state; one escaping path; real validators.

Property-based tests build states from arbitrary accepted inputs (and from hostile
strings, which must be refused or left out) and check that the real `nginx -t` and
`dnsmasq --test` accept every file, and that nothing but the intended entries appears.

That case, against the real tools, is in tests/functional/networking/test_render.py;
the others, and the helpers both use, are here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from hypothesis import assume, given
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
from networking.validators import validate_hostname

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
    # Each mapping in the stream shard of its port mod the shards (8), and in no other.
    assert a.revisions.keys() == {"nginx", *(f"stream-{i}" for i in range(8))}
    even, odd = a.files["nginx/stream-0.conf"], a.files["nginx/stream-1.conf"]
    assert "TCP:10000 10.15.1.2:22; # mapping 1" in even and "listen 127.0.0.1:10000;" in even
    assert "UDP:10001 10.15.1.2:53; # mapping 2" in odd
    assert re.search(r"listen 127\.0\.0\.1:10001 udp;", odd)
    others = [a.files[f"nginx/stream-{i}.conf"] for i in range(2, 8)]
    assert not any("# mapping" in f for f in others) and "# mapping 1" not in odd
    assert "listen 127.0.0.1:10000" not in a.files["nginx/nginx.conf"]
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


def _label_ok(value: str) -> bool:
    try:
        validate_hostname(value)
    except ValidationError:
        return False
    return True


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


def test_gc_paused_pauses_the_collector_and_restores_it_as_it_was() -> None:
    import gc

    from portal.collector import gc_paused

    inside = []

    def a_failed_render() -> None:
        with gc_paused():
            inside.append(gc.isenabled())
            raise RuntimeError("a failed render")

    assert gc.isenabled()
    with pytest.raises(RuntimeError):
        a_failed_render()
    assert inside == [False] and gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # left as the caller had it
    finally:
        gc.enable()
