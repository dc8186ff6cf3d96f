"""The escaping path of the gateway's files, and the site's entries checked and written as lines.

`conf_value` is the one escaping path: it admits only integers and short ASCII tokens with
no whitespace, quotes, `;`, `{`, `}`, `#`, `$` or backslash. `conf_values` applies the very
same rule to a whole column of values at once.

Every entry (route, port mapping, host, forwarder) is checked before it is written; one
that would fail is left out with its reason, so one bad row never stops the others. The
usual case, every entry fine, is recognised per column at C speed (`_routes_fine` and its
siblings): joined by newlines, a column is matched by one regular expression. These bulk
checks are never looser than the per-entry ones (a column passes only if each of its values
would), so when any fails the entries are checked one by one, which gives each bad one its
reason; both ways give the same files.

The entries' lines (`routes.map`, the stream map and listens, `hosts`, `dhcp-hosts`) are
built here as `Lines`, from values `conf_values` admitted joined by fixed punctuation; the
templates place them where their loops used to be. At 10,000 containers this takes about
15 ms of CPU where the Jinja2 loops calling `conf_value` on each of 140,000 values took 40.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from .models import PortProtocol
from .validators import DNS_LABEL_RE, MAC_RE, MAX_PORT, MIN_PUBLISHED_PORT, is_dns_label

if TYPE_CHECKING:
    from .render_state import HostEntry, MappingEntry, RouteEntry, SiteState


class UnsafeValue(ValueError):
    """A value that cannot be written into a configuration file as a single token."""


# -- the escaping path --------------------------------------------------------------------------
_TOKEN_CHARS = r"A-Za-z0-9._:/@+~|\[\]-"
_TOKEN = re.compile(f"[{_TOKEN_CHARS}]+")
MAX_TOKEN = 4096


def conf_value(value: Any) -> str:
    """The one escaping path for configuration files: admit a safe token, refuse the rest."""
    kind = type(value)  # exact types: a bool is not a port, a str subclass is not trusted
    if kind is str:
        if len(value) <= MAX_TOKEN and value.isascii() and _TOKEN.fullmatch(value):
            return value
    elif kind is int:
        return str(value)
    raise UnsafeValue(f"refusing to write {value!r} into a configuration file")


def _every(pattern: str) -> re.Pattern[str]:
    """Newline-joined values, each matched whole by `pattern`."""
    return re.compile(f"(?:{pattern})(?:\n(?:{pattern}))*")


_NOT_TOKEN = re.compile(f"[^\n{_TOKEN_CHARS}]")  # the range ends the class


def _joined_match(values: Sequence[Any], every: re.Pattern[str], *, upper: bool = False) -> bool:
    """Every value is an exact str and `every` matches them joined by newlines (a value
    holding a newline itself is caught by the count). ASCII only, as each check asks."""
    if not values:
        return True
    if set(map(type, values)) != {str}:
        return False
    joined = "\n".join(values)
    if not joined.isascii() or joined.count("\n") != len(values) - 1:
        return False
    return every.fullmatch(joined.upper() if upper else joined) is not None


def _tokens(values: Sequence[str]) -> bool:
    """Exact strs, each 1 to MAX_TOKEN token characters (no newline: the count says)."""
    joined = "\n".join(values)
    return (
        joined.isascii()
        and joined.count("\n") == len(values) - 1
        and min(map(len, values)) > 0
        and max(map(len, values)) <= MAX_TOKEN
        and _NOT_TOKEN.search(joined) is None
    )


def conf_values(values: Sequence[Any]) -> None:
    """`conf_value` for every value of a column: the same rule, for all at once.

    Raises `conf_value`'s UnsafeValue for the first refused value."""
    kinds = set(map(type, values))
    if kinds <= {int} or (kinds == {str} and _tokens(values)):
        return
    for value in values:
        conf_value(value)


class Lines:
    """Entry lines for a template, each ending with a newline; built only in this module,
    from values `conf_values` admitted, joined by fixed punctuation."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def finalize(value: Any) -> str:
    """The templates' finalize hook: entry lines as built, every other value a token."""
    if type(value) is Lines:
        return value.text
    return conf_value(value)


def _column(rows: Sequence[tuple[Any, ...]], index: int) -> list[Any]:
    return list(map(itemgetter(index), rows))


# -- per-entry checks ----------------------------------------------------------------------------
_IPV4_PATTERN = (
    r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}"
    r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
)
_IPV4 = re.compile(_IPV4_PATTERN)
_IPV4S = _every(_IPV4_PATTERN)
# DNS_LABEL_RE and MAC_RE without their anchors, for columns.
_LABELS = _every(DNS_LABEL_RE.pattern.strip("^$"))
_MACS = _every(MAC_RE.pattern.strip("^$"))
_ACE = "\nxn--"  # a punycode label: checked one by one (it must decode)


def ipv4(value: str) -> str:
    """A dotted-quad IPv4 address, as written (a regex: ipaddress is slow at 10,000s)."""
    if type(value) is not str or not _IPV4.fullmatch(value):
        raise ValueError(value)
    return value


def _check_route(r: RouteEntry, domain: str) -> str | None:
    if not is_dns_label(r.subdomain):
        return f"subdomain {r.subdomain!r} is not a DNS label"
    if len(r.subdomain) + 1 + len(domain) > 253:
        return "the name is longer than 253 characters"
    try:
        ipv4(r.ip)
    except ValueError:
        return f"backend address {r.ip!r} is not an IPv4 address"
    if isinstance(r.port, bool) or not isinstance(r.port, int) or not 1 <= r.port <= MAX_PORT:
        return f"backend port {r.port!r} is outside 1-65535"
    if r.protocol not in ("http", "https"):
        return f"protocol {r.protocol!r} is not http or https"
    if r.access not in ("public", "users", "owner"):
        return f"access {r.access!r} is not public, users or owner"
    return None


def _check_mapping(m: MappingEntry) -> str | None:
    if m.protocol not in ("tcp", "udp"):
        return f"protocol {m.protocol!r} is not tcp or udp"
    ext, port = m.external_port, m.container_port
    if (
        isinstance(ext, bool)
        or not isinstance(ext, int)
        or not MIN_PUBLISHED_PORT <= ext <= MAX_PORT
    ):
        return f"gateway port {ext!r} is outside {MIN_PUBLISHED_PORT}-{MAX_PORT}"
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= MAX_PORT:
        return f"container port {port!r} is outside 1-65535"
    try:
        ipv4(m.ip)
    except ValueError:
        return f"container address {m.ip!r} is not an IPv4 address"
    return None


def _check_host(h: HostEntry) -> str | None:
    if not is_dns_label(h.name):
        return f"name {h.name!r} is not a DNS label"
    try:
        ipv4(h.ip)
    except ValueError:
        return f"address {h.ip!r} is not an IPv4 address"
    if h.mac and not MAC_RE.fullmatch(h.mac.upper()):
        return f"MAC {h.mac!r} is not six hex pairs"
    return None


def _split_forwarder(value: str) -> tuple[str, int] | None:
    addr, _, port = value.partition("#")
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return None
    if port and (not port.isdigit() or not 1 <= int(port) <= MAX_PORT):
        return None
    return str(ip), int(port) if port else 0


def _excluded(kind: str, id_: int, name: str, reason: str) -> dict[str, Any]:
    return {"kind": kind, "id": id_, "name": name, "reason": reason}


# -- the same checks per column ------------------------------------------------------------------
def _labels_fine(values: Sequence[Any]) -> bool:
    return _joined_match(values, _LABELS) and _ACE not in "\n" + "\n".join(values)


def _ports_fine(values: Sequence[Any], lowest: int) -> bool:
    return not values or (
        set(map(type, values)) == {int} and min(values) >= lowest and max(values) <= MAX_PORT
    )


def _among(values: Sequence[Any], allowed: frozenset[str]) -> bool:
    try:
        return set(values) <= allowed
    except TypeError:  # unhashable: the per-entry check says what is wrong
        return False


def _routes_fine(routes: Sequence[RouteEntry], domain: str) -> bool:
    subdomains = _column(routes, 1)
    return (
        _labels_fine(subdomains)
        and max(map(len, subdomains), default=0) + 1 + len(domain) <= 253
        and _joined_match(_column(routes, 2), _IPV4S)
        and _ports_fine(_column(routes, 3), 1)
        and _among(_column(routes, 4), frozenset({"http", "https"}))
        and _among(_column(routes, 5), frozenset({"public", "users", "owner"}))
    )


def _mappings_fine(mappings: Sequence[MappingEntry]) -> bool:
    protocols, external = _column(mappings, 1), _column(mappings, 2)
    return (
        _among(protocols, frozenset({"tcp", "udp"}))
        and _ports_fine(external, MIN_PUBLISHED_PORT)
        and _ports_fine(_column(mappings, 4), 1)
        and _joined_match(_column(mappings, 3), _IPV4S)
        and len(set(zip(protocols, external, strict=True))) == len(mappings)  # none twice
    )


def _hosts_fine(hosts: Sequence[HostEntry]) -> bool:
    names = _column(hosts, 2)
    return (
        _labels_fine(names)
        and "gateway" not in names
        and len(set(names)) == len(names)  # none twice
        and _joined_match(_column(hosts, 3), _IPV4S)
        and _joined_match([m for m in _column(hosts, 4) if m], _MACS, upper=True)
    )


# -- the entries that can be published -----------------------------------------------------------
LEFT_OUT = "left out after a validation failure"

RouteRow = tuple[str, str, int]  # fqdn, "protocol|ip:port|access", id
MappingRow = tuple[str, str, int, bool, int]  # "TCP:port", "ip:port", port, udp, id


def routes(
    state: SiteState, skip: set[tuple[str, int]], excluded: list[dict[str, Any]]
) -> list[RouteRow]:
    """(fqdn, "protocol|ip:port|access", id) of each route that can be published."""
    domain = state.domain
    if not skip and _routes_fine(state.routes, domain):
        return [
            (f"{sub}.{domain}", f"{protocol}|{ip}:{port}|{access}", id_)
            for id_, sub, ip, port, protocol, access in state.routes
        ]
    found = []
    for r in state.routes:
        fqdn = f"{r.subdomain}.{domain}"
        reason = LEFT_OUT if ("route", r.id) in skip else _check_route(r, domain)
        if reason:
            excluded.append(_excluded("route", r.id, fqdn, reason))
        else:
            found.append((fqdn, f"{r.protocol}|{r.ip}:{r.port}|{r.access}", r.id))
    return found


_UDP = PortProtocol.UDP.value
_KEY = {"tcp": "TCP", "udp": "UDP"}  # a stream map key's protocol: the protocol upper-cased


def _mapping(m: MappingEntry) -> MappingRow:
    return (
        f"{m.protocol.upper()}:{m.external_port}",
        f"{m.ip}:{m.container_port}",
        m.external_port,
        m.protocol == _UDP,
        m.id,
    )


def mappings(
    state: SiteState, skip: set[tuple[str, int]], excluded: list[dict[str, Any]]
) -> tuple[list[MappingRow], dict[tuple[str, int], int]]:
    """The stream entries of each port mapping that can be published, and which mapping
    holds each (protocol, external port)."""
    if not skip and _mappings_fine(state.mappings):
        return [
            (f"{_KEY[p]}:{ext}", f"{ip}:{port}", ext, p == _UDP, id_)
            for id_, p, ext, ip, port, _, _ in state.mappings
        ], {(m.protocol, m.external_port): m.id for m in state.mappings}
    found = []
    stream_ports: dict[tuple[str, int], int] = {}
    for m in state.mappings:
        label = f"{m.protocol}/{m.external_port} ({m.hostname} {m.name})"
        reason = LEFT_OUT if ("mapping", m.id) in skip else _check_mapping(m)
        if not reason and (m.protocol, m.external_port) in stream_ports:
            reason = f"{m.protocol.upper()} port {m.external_port} is mapped twice"
        if reason:
            excluded.append(_excluded("mapping", m.id, label, reason))
            continue
        stream_ports[(m.protocol, m.external_port)] = m.id
        found.append(_mapping(m))
    return found, stream_ports


def hosts(
    state: SiteState, skip: set[tuple[str, int]], excluded: list[dict[str, Any]]
) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """The DNS names (ip, fqdn, name) and DHCP reservations (MAC, ip, name) to publish."""
    internal = state.internal_domain
    if not skip and _hosts_fine(state.hosts):
        found = [(ip, f"{name}.{internal}", name) for _, _, name, ip, _ in state.hosts]
        macs = "".join(filter(None, _column(state.hosts, 4)))
        if macs == macs.upper():  # as stored: no need to upper-case each
            return found, [(mac, ip, name) for _, _, name, ip, mac in state.hosts if mac]
        return found, [(mac.upper(), ip, name) for _, _, name, ip, mac in state.hosts if mac]
    found, reservations = [], []
    names: set[str] = {"gateway"}
    for h in state.hosts:
        reason = LEFT_OUT if (h.kind, h.id) in skip else _check_host(h)
        if not reason and h.name in names:
            reason = f"the name {h.name!r} is already published"
        if reason:
            excluded.append(_excluded("host", h.id, f"{h.kind} {h.name}", reason))
            continue
        names.add(h.name)
        found.append((h.ip, f"{h.name}.{internal}", h.name))
        if h.mac:
            reservations.append((h.mac.upper(), h.ip, h.name))
    return found, reservations


def forwarders(
    state: SiteState, skip: set[tuple[str, int]], excluded: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    found = []
    for i, f in enumerate(state.forwarders):
        parts = _split_forwarder(f) if ("forwarder", i) not in skip else None
        if parts is None:
            excluded.append(_excluded("forwarder", i, f, "not an IP address (optionally #port)"))
        else:
            found.append({"id": i, "ip": parts[0], "port": parts[1]})
    return found


# -- their lines ---------------------------------------------------------------------------------
def _checked(rows: Sequence[tuple[Any, ...]], written: Iterable[int]) -> None:
    for i in written:
        conf_values(_column(rows, i))


def route_lines(found: Sequence[RouteRow]) -> Lines:
    """routes.map: `<fqdn> <protocol>|<ip>:<port>|<access>; # route <id>`."""
    _checked(found, (0, 1, 2))
    return Lines("".join([f"{fqdn} {value}; # route {id_}\n" for fqdn, value, id_ in found]))


def stream_lines(found: Sequence[MappingRow], bind: str, shards: int) -> list[tuple[Lines, Lines]]:
    """Each stream shard's map entries (`<PROTOCOL>:<port> <ip>:<port>; # mapping <id>`)
    and listens (`listen <bind>:<port>[ udp]; # mapping <id>`), indented in their blocks:
    a mapping goes to shard `port % shards`, so consecutive ports spread evenly."""
    _checked(found, (0, 1, 2, 4))
    conf_value(bind)
    parts: list[tuple[list[str], list[str]]] = [([], []) for _ in range(shards)]
    for key, to, port, udp, id_ in found:
        entries, listens = parts[port % shards]
        entries.append(f"        {key} {to}; # mapping {id_}\n")
        listens.append(f"        listen {bind}:{port}{' udp' if udp else ''}; # mapping {id_}\n")
    return [(Lines("".join(e)), Lines("".join(ls))) for e, ls in parts]


def host_lines(found: Sequence[tuple[str, str, str]]) -> Lines:
    """hosts: `<ip> <fqdn> <name>`."""
    _checked(found, (0, 1, 2))
    return Lines("".join([f"{ip} {fqdn} {name}\n" for ip, fqdn, name in found]))


def reservation_lines(found: Sequence[tuple[str, str, str]]) -> Lines:
    """dhcp-hosts: `<MAC>,<ip>,<name>`."""
    _checked(found, (0, 1, 2))
    return Lines("".join([f"{mac},{ip},{name}\n" for mac, ip, name in found]))
