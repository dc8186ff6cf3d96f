"""Rendering: one pure function from a site's state to the gateway's files.

`load_state` (`networking.render_state`, re-exported here) reads the database into plain
values; `render` turns those values and the gateway options into `{relative path: content}`. Nothing else writes configuration.

Every value interpolated into an NGINX or dnsmasq file passes through `conf_value`
(the Jinja2 `finalize` hook), which admits only integers and short ASCII tokens with no
whitespace, quotes, `;`, `{`, `}`, `#`, `$` or backslash, so no accepted input can add a
directive, a line or a block. Entries are checked first; an entry that would fail is left
out with its reason, so one bad row never stops the others. The entries and their lines,
where 10,000 containers make 40,000 lines, are `networking.render_entries`: every value of
them passes `conf_values`, the same rule for a column at once.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from portal.gateway_defaults import GATEWAY_DEFAULTS as _DEFAULTS
from portal.gateway_defaults import public_port, shard_status_listen

from . import render_entries as entries
from .render_entries import LEFT_OUT, UnsafeValue, conf_value  # noqa: F401 - re-exported
from .render_state import (  # noqa: F401 - re-exported: callers import the state from here
    HostEntry,
    MappingEntry,
    RouteEntry,
    SiteState,
    bootstrap_state,
    load_state,
)
from .validators import is_domain

TEMPLATES = Path(__file__).resolve().parent / "config_templates"
# The file whose content names the revision; left out of the content hash it carries.
REVISION_FILE = "nginx/revision.conf"
MANIFEST_FILE = "manifest.json"
MAX_STREAM_SHARDS = 64
_SHARD_FILE = re.compile(r"nginx/stream-(\d+)\.conf")
# Stands for a stream shard's revision while the file it names is hashed.
_UNHASHED = "0" * 64

_COOKIE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_MARK = re.compile(r"# (route|mapping|host|forwarder) (\d+)\s*$")


class RenderError(Exception):
    """The site or the gateway settings cannot be rendered at all (not one entry)."""


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def html_text(value: Any) -> Any:
    """Values in the HTML pages: control characters dropped (Jinja2 then HTML-escapes)."""
    if isinstance(value, str):
        return _CONTROL.sub("", value)
    return value


_conf_env = Environment(
    loader=FileSystemLoader(str(TEMPLATES)),
    undefined=StrictUndefined,
    finalize=entries.finalize,
    autoescape=False,  # noqa: S701 - not HTML: conf_value is the escaping path
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
)
_html_env = Environment(
    loader=FileSystemLoader(str(TEMPLATES)),
    undefined=StrictUndefined,
    finalize=html_text,
    autoescape=True,
    keep_trailing_newline=True,
)


# -- the options --------------------------------------------------------------------------------
@dataclass(frozen=True)
class GatewayOptions:
    """Everything the files need besides the site: where they live and what they listen on."""

    root: Path
    http_listen: tuple[str, ...] = _DEFAULTS.http_listen
    https_listen: tuple[str, ...] = _DEFAULTS.https_listen
    status_listen: str = _DEFAULTS.status_listen
    stream_bind: str = _DEFAULTS.stream_bind
    stream_shards: int = _DEFAULTS.stream_shards
    public_https_port: int = _DEFAULTS.public_https_port
    dns_listen: tuple[str, ...] = _DEFAULTS.dns_listen
    dns_port: int = _DEFAULTS.dns_port
    dhcp_enabled: bool = _DEFAULTS.dhcp_enabled
    dhcp_lease: str = _DEFAULTS.dhcp_lease
    stream_module: str = _DEFAULTS.stream_module
    tls_certificate: str = _DEFAULTS.tls_certificate
    tls_certificate_key: str = _DEFAULTS.tls_certificate_key
    acme_dir: str = _DEFAULTS.acme_dir
    auth_url: str = _DEFAULTS.auth_url
    portal_url: str = _DEFAULTS.portal_url
    portal_name: str = _DEFAULTS.portal_name
    login_path: str = "/gateway/login"
    session_cookie: str = "portal_session"
    credential_cookie: str = _DEFAULTS.credential_cookie
    client_max_body_size: str = _DEFAULTS.client_max_body_size
    proxy_timeout: int = _DEFAULTS.proxy_timeout
    stream_timeout: int = _DEFAULTS.stream_timeout
    worker_user: str = _DEFAULTS.worker_user

    @classmethod
    def from_settings(cls, root: Path | None = None) -> GatewayOptions:
        from django.conf import settings as s

        return cls(
            root=Path(root or s.GATEWAY_DIR),
            http_listen=tuple(s.GATEWAY_HTTP_LISTEN),
            https_listen=tuple(s.GATEWAY_HTTPS_LISTEN),
            status_listen=s.GATEWAY_STATUS_LISTEN,
            stream_bind=s.GATEWAY_STREAM_BIND,
            stream_shards=int(s.GATEWAY_STREAM_SHARDS),
            public_https_port=int(s.GATEWAY_PUBLIC_HTTPS_PORT),
            dns_listen=tuple(s.GATEWAY_DNS_LISTEN),
            dns_port=int(s.GATEWAY_DNS_PORT),
            dhcp_enabled=bool(s.GATEWAY_DHCP_ENABLED),
            dhcp_lease=s.GATEWAY_DHCP_LEASE,
            stream_module=s.GATEWAY_NGINX_STREAM_MODULE,
            tls_certificate=s.GATEWAY_TLS_CERTIFICATE,
            tls_certificate_key=s.GATEWAY_TLS_CERTIFICATE_KEY,
            acme_dir=s.GATEWAY_ACME_DIR,
            auth_url=s.GATEWAY_AUTH_URL,
            portal_url=s.GATEWAY_PORTAL_URL.rstrip("/"),
            portal_name=s.GATEWAY_PORTAL_NAME,
            session_cookie=s.SESSION_COOKIE_NAME,
            credential_cookie=s.GATEWAY_CREDENTIAL_COOKIE,
            client_max_body_size=s.GATEWAY_CLIENT_MAX_BODY_SIZE,
            proxy_timeout=int(s.GATEWAY_PROXY_TIMEOUT),
            stream_timeout=int(s.GATEWAY_STREAM_TIMEOUT),
            worker_user=s.GATEWAY_WORKER_USER,
        )

    @property
    def public_port(self) -> int:
        """The HTTPS port browsers use: the setting, else the first listen's, else 443."""
        return public_port(self.public_https_port, self.https_listen)

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    def shard_status_listen(self, shard: int) -> str:
        """Where stream shard `shard` answers its revision: the status port + 1 + shard."""
        listen = shard_status_listen(self.status_listen, shard)
        if not listen:
            raise RenderError(f"setting GATEWAY_STATUS_LISTEN {self.status_listen!r} has no port")
        return listen


# -- the result ---------------------------------------------------------------------------------
@dataclass
class Rendered:
    files: dict[str, str]
    hashes: dict[str, str]  # path: SHA-256 of the file, as the manifest lists them
    content_hash: str
    excluded: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    # (protocol, port) of every stream listen, for the bind check and the change summary.
    stream_ports: dict[tuple[str, int], int] = field(default_factory=dict)
    route_names: list[str] = field(default_factory=list)
    # What each nginx answers on its status listen once it serves these files:
    # "nginx" (the HTTP instance) and "stream-<i>" (each stream shard).
    revisions: dict[str, str] = field(default_factory=dict)

    @functools.cached_property
    def port_names(self) -> list[str]:
        """`protocol:port` of every stream listen, as the manifest lists them (in order)."""
        return [f"{protocol}:{port}" for protocol, port in self.stream_ports]

    def owner_of(self, path: str, line: int) -> tuple[str, int] | None:
        """The entry (kind, id) that produced line `line` (1-based) of file `path`."""
        text = self.files.get(path)
        if text is None:
            return None
        lines = text.split("\n")
        if not 1 <= line <= len(lines):
            return None
        m = _MARK.search(lines[line - 1])
        return (m[1], int(m[2])) if m else None


def _site_errors(state: SiteState) -> list[str]:
    errors = []
    for label, value in (("domain", state.domain), ("internal domain", state.internal_domain)):
        if not is_domain(value):
            errors.append(f"the site's {label} {value!r} is not a domain name")
    for label, value in (
        ("gateway address", state.gateway_ip),
        ("DHCP start", state.dhcp_start),
        ("DHCP end", state.dhcp_end),
    ):
        try:
            entries.ipv4(value)
        except ValueError:
            errors.append(f"the site's {label} {value!r} is not an IPv4 address")
    try:
        ipaddress.IPv4Network(state.subnet)
    except ValueError:
        errors.append(f"the site's subnet {state.subnet!r} is not an IPv4 network")
    return errors


def _checked_options(o: GatewayOptions, domain: str) -> dict[str, Any]:
    """The options as template values, each checked once: a bad setting names itself."""

    def tok(name: str, value: Any) -> Any:
        try:
            conf_value(value)
        except UnsafeValue as exc:
            raise RenderError(f"setting {name} cannot be written safely: {exc}") from None
        return value

    acme = o.acme_dir or str(o.root / "acme")
    if not 1 <= o.stream_shards <= MAX_STREAM_SHARDS:
        raise RenderError(f"setting GATEWAY_STREAM_SHARDS must be 1 to {MAX_STREAM_SHARDS}")
    https_port = o.public_port
    if not o.auth_url.startswith(("http://", "https://")):
        raise RenderError("setting GATEWAY_AUTH_URL must be an http(s) URL")
    return {
        "root": tok("GATEWAY_DIR", str(o.root)),
        "run": tok("GATEWAY_DIR", str(o.run_dir)),
        "http_listen": [tok("GATEWAY_HTTP_LISTEN", v) for v in o.http_listen],
        "https_listen": [tok("GATEWAY_HTTPS_LISTEN", v) for v in o.https_listen],
        "status_listen": tok("GATEWAY_STATUS_LISTEN", o.status_listen),
        "stream_bind": tok("GATEWAY_STREAM_BIND", o.stream_bind),
        "shard_status_listen": [
            tok("GATEWAY_STATUS_LISTEN", o.shard_status_listen(i)) for i in range(o.stream_shards)
        ],
        "port_suffix": "" if https_port == 443 else f":{https_port}",
        "dns_listen": [tok("GATEWAY_DNS_LISTEN", v) for v in o.dns_listen],
        "dns_port": tok("GATEWAY_DNS_PORT", int(o.dns_port)),
        "dhcp_enabled": o.dhcp_enabled,
        "dhcp_lease": tok("GATEWAY_DHCP_LEASE", o.dhcp_lease),
        "stream_module": tok("GATEWAY_NGINX_STREAM_MODULE", o.stream_module)
        if o.stream_module
        else "",
        "tls_certificate": tok(
            "GATEWAY_TLS_CERTIFICATE", o.tls_certificate.replace("{domain}", domain)
        ),
        "tls_certificate_key": tok(
            "GATEWAY_TLS_CERTIFICATE_KEY", o.tls_certificate_key.replace("{domain}", domain)
        ),
        "acme_dir": tok("GATEWAY_ACME_DIR", acme),
        "auth_url": tok("GATEWAY_AUTH_URL", o.auth_url),
        "login_url": tok("GATEWAY_PORTAL_URL", o.portal_url + o.login_path),
        # The exchange lives beside the auth check on the portal (same host, same path prefix).
        "session_url": tok("GATEWAY_AUTH_URL", o.auth_url.rsplit("/", 1)[0] + "/session"),
        "private_cookies": "|".join(
            (
                _cookie_name("GATEWAY_CREDENTIAL_COOKIE", o.credential_cookie),
                _cookie_name("SESSION_COOKIE_NAME", o.session_cookie.removeprefix("__Host-")),
            )
        ),
        "client_max_body_size": tok("GATEWAY_CLIENT_MAX_BODY_SIZE", o.client_max_body_size),
        "proxy_timeout": tok("GATEWAY_PROXY_TIMEOUT", int(o.proxy_timeout)),
        "stream_timeout": tok("GATEWAY_STREAM_TIMEOUT", int(o.stream_timeout)),
        "worker_user": tok("GATEWAY_WORKER_USER", o.worker_user) if o.worker_user else "",
    }


def _cookie_name(setting: str, name: str) -> str:
    # It goes into a regex as well as a token: letters, digits, '_' and '-' only.
    if not _COOKIE_NAME.fullmatch(name):
        raise RenderError(f"setting {setting} {name!r} must be letters, digits, _ or -")
    return name


def _hash_size(entries: int) -> int:
    return max(2048, 1 << (2 * entries).bit_length())


def _round_up(n: int, to: int) -> int:
    return (n + to - 1) // to * to


# -- render -------------------------------------------------------------------------------------
def _sizes(o: dict[str, Any], routes: list[Any]) -> dict[str, int]:
    """The HTTP nginx's connection, file and map hash sizes for this many routes."""
    # Every listening socket needs a connection slot in every worker, and each proxied
    # connection two; the map hash is sized for the routes, its buckets for the longest.
    listens = len(o["http_listen"]) + len(o["https_listen"]) + 1
    worker_connections = listens + 8192
    longest = max(map(len, map(itemgetter(0), routes)), default=0)
    return {
        "worker_connections": worker_connections,
        "nofile": 2 * worker_connections + listens,
        # Sized by the entries (100,000 routes -> 262144); a fixed large size would cost
        # every small site ~80 ms per reload in nginx's hash building.
        "map_hash_max_size": _hash_size(len(routes)),
        "map_hash_bucket_size": max(128, _round_up(longest + 32, 64)),
    }


def _shard_sizes(mappings: int) -> dict[str, int]:
    """A stream shard's sizes, rounded up so that one more mapping rarely changes them."""
    listens = _round_up(mappings + 1, 1024)
    worker_connections = listens + 4096
    return {
        "worker_connections": worker_connections,
        "nofile": 2 * worker_connections + listens,
        "stream_hash_max_size": _hash_size(mappings),
    }


_CONF_FILES = {
    "nginx/nginx.conf": "nginx.conf.j2",
    "nginx/proxy.conf": "proxy.conf.j2",
    "nginx/errors.conf": "errors.conf.j2",
    "nginx/routes.map": "routes.map.j2",
    "dnsmasq/dnsmasq.conf": "dnsmasq.conf.j2",
    "dnsmasq/hosts": "hosts.j2",
    "dnsmasq/dhcp-hosts": "dhcp-hosts.j2",
}


def _error_pages(state: SiteState, options: GatewayOptions, o: dict[str, Any]) -> dict[str, str]:
    page_ctx = {
        "portal_name": options.portal_name,
        "portal_url": options.portal_url,
        "domain": state.domain,
        "port_suffix": o["port_suffix"],
        "site_name": state.name,
    }
    return {
        f"nginx/html/{page}.html": _html_env.get_template(f"{page}.html.j2").render(page_ctx)
        for page in ("404", "403", "502")
    }


def render(
    state: SiteState, options: GatewayOptions, *, exclude: Iterable[tuple[str, int]] = ()
) -> Rendered:
    """The site's complete gateway configuration, as {relative path: content}.

    `exclude` names entries (kind, id) to leave out, e.g. those a validation blamed.
    """
    errors = [] if state.bootstrap else _site_errors(state)
    if errors:
        raise RenderError("; ".join(errors))
    o = _checked_options(options, state.domain)
    skip = set(exclude)
    excluded: list[dict[str, Any]] = []
    routes = entries.routes(state, skip, excluded)
    mappings, stream_ports = entries.mappings(state, skip, excluded)
    hosts, reservations = entries.hosts(state, skip, excluded)
    shard_lines = entries.stream_lines(mappings, o["stream_bind"], options.stream_shards)
    ctx = {
        "site": {
            "slug": state.slug,
            "domain": state.domain,
            "internal_domain": state.internal_domain,
            "gateway_ip": state.gateway_ip,
            "dhcp_start": state.dhcp_start,
            "dhcp_end": state.dhcp_end,
            "netmask": str(ipaddress.IPv4Network(state.subnet).netmask),
        },
        "bootstrap": state.bootstrap,
        "o": o,
        "routes": routes,
        "mappings": mappings,
        "hosts": hosts,
        "route_lines": entries.route_lines(routes),
        "host_lines": entries.host_lines(hosts),
        "reservation_lines": entries.reservation_lines(reservations),
        "forwarders": entries.forwarders(state, skip, excluded),
        **_sizes(o, routes),
    }
    files = {path: _conf_env.get_template(t).render(ctx) for path, t in _CONF_FILES.items()}
    files.update(_error_pages(state, options, o))
    revisions = {"nginx": hash_files({p: c for p, c in files.items() if p.startswith("nginx/")})}
    for shard, (stream_map, listens) in enumerate(shard_lines):
        name, text = _shard_file(ctx, shard, stream_map, listens)
        revisions[instance_of(name)] = hashlib.sha256(text.encode()).hexdigest()
        files[name] = text.replace(_UNHASHED, revisions[instance_of(name)])
    hashes = file_hashes(files)
    content_hash = _content_hash(hashes)
    files[REVISION_FILE] = _conf_env.get_template("revision.conf.j2").render(
        {"hash": revisions["nginx"]}
    )
    hashes.update(file_hashes({REVISION_FILE: files[REVISION_FILE]}))
    return Rendered(
        files=files,
        hashes=hashes,
        content_hash=content_hash,
        excluded=excluded,
        counts={
            "routes": len(routes),
            "port_mappings": len(mappings),
            "hosts": len(hosts),
            "reservations": len(reservations),
            "excluded": len(excluded),
        },
        stream_ports=stream_ports,
        route_names=[r[0] for r in routes],
        revisions=revisions,
    )


def _shard_file(
    ctx: dict[str, Any], shard: int, stream_map: entries.Lines, listens: entries.Lines
) -> tuple[str, str]:
    """Stream shard `shard`'s path and file, its revision still `_UNHASHED` (the revision
    is the hash of the file as it is then)."""
    o = ctx["o"]
    text = _conf_env.get_template("stream.conf.j2").render(
        {
            **ctx,
            **_shard_sizes(listens.text.count("\n")),
            "shard": shard,
            "shards": len(o["shard_status_listen"]),
            "stream_map": stream_map,
            "listens": listens,
            "status_listen": o["shard_status_listen"][shard],
            "revision": _UNHASHED,
        }
    )
    return f"nginx/stream-{shard}.conf", text


def instance_of(path: str) -> str:
    """The server that reads a gateway file: "nginx" (HTTP), "stream-<i>" or "dnsmasq"."""
    m = _SHARD_FILE.fullmatch(path)
    if m:
        return f"stream-{m[1]}"
    return path.split("/", 1)[0]


def hash_files(files: dict[str, str]) -> str:
    """The content hash of a set of files (the revision file and the manifest left out)."""
    return _content_hash(file_hashes(files))


def _content_hash(hashes: dict[str, str]) -> str:
    h = hashlib.sha256()
    for path in sorted(hashes):
        if path in (REVISION_FILE, MANIFEST_FILE):
            continue
        h.update(path.encode() + b"\0" + bytes.fromhex(hashes[path]))
    return h.hexdigest()


def file_hashes(files: dict[str, str]) -> dict[str, str]:
    return {p: hashlib.sha256(c.encode()).hexdigest() for p, c in files.items()}
