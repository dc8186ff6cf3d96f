"""Validation of every string that can reach a config file or a Proxmox parameter.

Names are checked where they enter, against a whitelist, so that nothing accepted can
add a line, a directive or a block to an NGINX, dnsmasq or Proxmox value.
"""

from __future__ import annotations

import ipaddress
import re

import idna
from django.core.exceptions import ValidationError

from portal.errors import ErrorCode

DNS_LABEL_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# A domain: dot-separated DNS labels, at least two.
DOMAIN_RE = re.compile(
    r"^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
)
SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")
MAC_RE = re.compile(r"^[0-9A-F]{2}(?::[0-9A-F]{2}){5}$")

# Names the portal keeps for itself (its own subdomains and well-known service names).
RESERVED_HOSTNAMES = frozenset(
    {
        "portal",
        "www",
        "api",
        "admin",
        "auth",
        "login",
        "sso",
        "ldap",
        "mail",
        "smtp",
        "imap",
        "pop",
        "ns",
        "ns1",
        "ns2",
        "dns",
        "gateway",
        "gw",
        "proxy",
        "nginx",
        "dnsmasq",
        "dhcp",
        "proxmox",
        "pve",
        "pve1",
        "pve2",
        "pve3",
        "pve4",
        "wazuh",
        "metrics",
        "grafana",
        "status",
        "static",
        "media",
        "assets",
        "cdn",
        "vpn",
        "ssh",
        "localhost",
        "launchpad",
        "docs",
        "help",
        "support",
        "root",
        "acme",
    }
)


ACE_PREFIX = "xn--"  # an IDNA A-label: punycode of an international name


def is_a_label_ok(label: str) -> bool:
    """A `xn--` label must decode to a valid international name and encode back to itself
    (browsers and resolvers refuse or rewrite broken ones); other labels are not concerned."""
    if not label.startswith(ACE_PREFIX):
        return True
    try:
        return bool(idna.encode(idna.decode(label)).decode("ascii") == label)
    except (idna.IDNAError, UnicodeError, ValueError):
        return False


def is_dns_label(value: object) -> bool:
    return (
        isinstance(value, str)
        and value.isascii()
        and DNS_LABEL_RE.fullmatch(value) is not None
        and is_a_label_ok(value)
    )


def is_domain(value: object) -> bool:
    return (
        isinstance(value, str)
        and value.isascii()
        and DOMAIN_RE.fullmatch(value) is not None
        and all(is_a_label_ok(label) for label in value.split("."))
    )


_BAD_PUNYCODE = "is not valid punycode (an xn-- label must encode an international name)"


def validate_dns_label(value: str) -> None:
    """One DNS label: lowercase letters, digits and hyphens, 1-63, no hyphen at the ends."""
    if not isinstance(value, str) or not value.isascii() or not DNS_LABEL_RE.fullmatch(value):
        raise ValidationError(
            "must be a DNS label: 1-63 lowercase letters, digits or hyphens, "
            "starting and ending with a letter or digit",
            code=ErrorCode.INVALID_HOSTNAME,
        )
    if not is_a_label_ok(value):
        raise ValidationError(f"'{value}' {_BAD_PUNYCODE}", code=ErrorCode.INVALID_HOSTNAME)


def validate_hostname(value: str) -> None:
    validate_dns_label(value)
    if value in RESERVED_HOSTNAMES:
        raise ValidationError(
            f"'{value}' is reserved by the portal", code=ErrorCode.RESERVED_HOSTNAME
        )
    if value.isdigit():
        raise ValidationError("must not be only digits", code=ErrorCode.INVALID_HOSTNAME)


def validate_domain(value: str) -> None:
    if not isinstance(value, str) or not value.isascii() or not DOMAIN_RE.fullmatch(value):
        raise ValidationError(
            "must be a domain name such as apps.example.org", code=ErrorCode.INVALID_DOMAIN
        )
    for label in value.split("."):
        if not is_a_label_ok(label):
            raise ValidationError(f"'{label}' {_BAD_PUNYCODE}", code=ErrorCode.INVALID_DOMAIN)


def validate_slug(value: str) -> None:
    if not SLUG_RE.fullmatch(value or ""):
        raise ValidationError(
            "1-32 lowercase letters, digits or hyphens", code=ErrorCode.INVALID_SLUG
        )


def validate_ipv4_network(value: str) -> None:
    try:
        net = ipaddress.IPv4Network(value, strict=True)
    except ValueError as exc:
        raise ValidationError(
            f"not an IPv4 network: {exc}", code=ErrorCode.INVALID_NETWORK
        ) from exc
    if net.prefixlen > 30:
        raise ValidationError(
            "the subnet must have room for hosts (/30 or larger)", code=ErrorCode.INVALID_NETWORK
        )


def parse_ranges(text: str) -> list[tuple[int, int]]:
    """Parse reserved ranges: one per line or comma, as CIDR, `a-b` or a single address."""
    ranges: list[tuple[int, int]] = []
    for raw in re.split(r"[\s,]+", text or ""):
        item = raw.strip()
        if not item:
            continue
        try:
            if "/" in item:
                net = ipaddress.IPv4Network(item, strict=False)
                ranges.append((int(net.network_address), int(net.broadcast_address)))
            elif "-" in item:
                lo, hi = (int(ipaddress.IPv4Address(p.strip())) for p in item.split("-", 1))
                if hi < lo:
                    raise ValueError(f"{item}: end before start")
                ranges.append((lo, hi))
            else:
                ip = int(ipaddress.IPv4Address(item))
                ranges.append((ip, ip))
        except ValueError as exc:
            raise ValidationError(
                f"bad range '{item}': {exc}", code=ErrorCode.INVALID_RANGE
            ) from exc
    return ranges


def validate_ranges(text: str) -> None:
    parse_ranges(text)


# Ports a gateway may publish: above the well-known range, at most 65535.
MIN_PUBLISHED_PORT = 1024
MAX_PORT = 65535


def parse_forwarders(text: str) -> list[str]:
    """Upstream DNS servers: IPv4 or IPv6 addresses, each optionally with `#port`.

    Returned in dnsmasq's `server=` form; anything else is refused, so nothing but an
    address can reach the `server=` line.
    """
    out: list[str] = []
    for raw in re.split(r"[\s,]+", text or ""):
        item = raw.strip()
        if not item:
            continue
        addr, _, port = item.partition("#")
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError as exc:
            raise ValidationError(
                f"bad DNS forwarder '{item}': an IP address, optionally with #port",
                code=ErrorCode.INVALID_FORWARDER,
            ) from exc
        if port and (not port.isdigit() or not 1 <= int(port) <= MAX_PORT):
            raise ValidationError(
                f"bad DNS forwarder port in '{item}'", code=ErrorCode.INVALID_FORWARDER
            )
        out.append(f"{ip}#{int(port)}" if port else str(ip))
    return out


def validate_forwarders(text: str) -> None:
    parse_forwarders(text)
