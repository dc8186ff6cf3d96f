"""Named formats (hand-written, as the schema only names them) and the LXC
property-string formats for net[n], rootfs, mp[n], features, dev[n], unused[n].

Every message is the one the matching pve-common / pve-container /
pve-access-control verifier dies with.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

from pvesim.schema import FormatError, Prop, register_format, register_hash_format

NODE_RE = r"[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?"
DNS_LABEL = r"([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)"
CONFIGID_RE = r"[a-z][a-z0-9_-]+"
STORAGE_ID_RE = r"[a-z][a-z0-9\-_.]*[a-z0-9]"
USER_RE = r"[^\s:/]+"
REALM_RE = r"[A-Za-z][A-Za-z0-9\.\-_]+"
TOKEN_NAME_RE = r"[A-Za-z][A-Za-z0-9\.\-_]+"
TAG_RE = r"[a-z0-9_][a-z0-9_\-\+\.]*"
MAC_RE = r"[a-f0-9][02468ace](?::[a-f0-9]{2}){5}"
SIZE_RE = r"(\d+(\.\d+)?)([KMGT])?"


def _match(pattern: str, value: str, flags: int = 0) -> bool:
    return re.fullmatch(pattern, value, flags) is not None


def _fmt(name: str) -> Callable[[Callable[[str], str]], Callable[[str], str]]:
    def deco(fn: Callable[[str], str]) -> Callable[[str], str]:
        register_format(name, fn)
        return fn

    return deco


@_fmt("pve-node")
def verify_node(value: str) -> str:
    if not _match(NODE_RE, value):
        raise FormatError("value does not look like a valid node name")
    return value


@_fmt("pve-vmid")
def verify_vmid(value: str) -> str:
    if not _match(r"[1-9][0-9]{2,8}", value):
        raise FormatError("value does not look like a valid VM ID")
    return value


@_fmt("pve-storage-id")
def verify_storage_id(value: str) -> str:
    if not _match(STORAGE_ID_RE, value, re.I):
        raise FormatError(f"storage ID '{value}' contains illegal characters")
    return value


@_fmt("pve-configid")
def verify_configid(value: str) -> str:
    if not _match(CONFIGID_RE, value, re.I):
        raise FormatError(f"invalid configuration ID '{value}'")
    return value


@_fmt("dns-name")
def verify_dns_name(value: str) -> str:
    if not _match(rf"({DNS_LABEL}\.)*{DNS_LABEL}", value):
        raise FormatError("value does not look like a valid DNS name")
    return value


@_fmt("mac-addr")
def verify_mac(value: str) -> str:
    if not _match(MAC_RE, value, re.I):
        raise FormatError("value does not look like a valid unicast MAC address")
    return value


def _is_ipv4(value: str) -> bool:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return True


def _is_ipv6(value: str) -> bool:
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return True


@_fmt("ipv4")
def verify_ipv4(value: str) -> str:
    if not _is_ipv4(value):
        raise FormatError("value does not look like a valid IPv4 address")
    return value


@_fmt("ipv6")
def verify_ipv6(value: str) -> str:
    if not _is_ipv6(value):
        raise FormatError("value does not look like a valid IPv6 address")
    return value


@_fmt("ip")
def verify_ip(value: str) -> str:
    if not (_is_ipv4(value) or _is_ipv6(value)):
        raise FormatError("value does not look like a valid IP address")
    return value


def _cidr_ok(value: str, v6: bool) -> bool:
    addr, sep, bits = value.partition("/")
    if not sep or not bits.isdigit():
        return False
    ok = _is_ipv6(addr) if v6 else _is_ipv4(addr)
    return ok and 7 < int(bits) <= (128 if v6 else 32)


@_fmt("pve-ipv4-config")
def verify_ipv4_config(value: str) -> str:
    if value in ("dhcp", "manual") or _cidr_ok(value, v6=False):
        return value
    raise FormatError("value does not look like a valid ipv4 network configuration")


@_fmt("pve-ipv6-config")
def verify_ipv6_config(value: str) -> str:
    if value in ("auto", "dhcp", "manual") or _cidr_ok(value, v6=True):
        return value
    raise FormatError("value does not look like a valid ipv6 network configuration")


def parse_size(value: str) -> int | None:
    """PVE::JSONSchema::parse_size: bytes, or None."""
    m = re.fullmatch(SIZE_RE, value)
    if not m:
        return None
    size = float(m.group(1))
    unit = m.group(3)
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(unit or "", 1)
    return int(size * mult)


def format_size(size: int) -> str:
    """PVE::JSONSchema::format_size: the largest exact unit."""
    for unit, shift in (("T", 40), ("G", 30), ("M", 20), ("K", 10)):
        if size % (1 << shift) == 0 and size >= (1 << shift):
            return f"{size >> shift}{unit}"
    return str(size)


@_fmt("disk-size")
def verify_disk_size(value: str) -> str:
    if parse_size(value) is None:
        raise FormatError(f"value does not look like a valid disk size: {value}")
    return value


@_fmt("pve-tag")
def verify_tag(value: str) -> str:
    if not _match(TAG_RE, value, re.I):
        raise FormatError("invalid characters in tag")
    return value


@_fmt("pve-volume-id")
def verify_volume_id(value: str) -> str:
    if not _match(rf"({STORAGE_ID_RE}):(.+)", value, re.I | re.S):
        raise FormatError(f"unable to parse volume ID '{value}'")
    return value


@_fmt("pve-poolid")
def verify_poolid(value: str) -> str:
    if not _match(r"[A-Za-z0-9\.\-_]+", value):
        raise FormatError(f"pool name '{value}' contains invalid characters")
    return value


@_fmt("pve-roleid")
def verify_roleid(value: str) -> str:
    if not _match(r"[A-Za-z0-9\.\-_]+", value):
        raise FormatError(f"role name '{value}' contains invalid characters")
    return value


@_fmt("pve-groupid")
def verify_groupid(value: str) -> str:
    if not _match(r"[A-Za-z0-9\.\-_]+", value):
        raise FormatError(f"group name '{value}' contains invalid characters")
    return value


@_fmt("pve-realm")
def verify_realm(value: str) -> str:
    if not _match(REALM_RE, value):
        raise FormatError("value does not look like a valid realm")
    return value


@_fmt("pve-userid")
def verify_userid(value: str) -> str:
    if len(value) < 3:
        raise FormatError(f"user name '{value}' is too short")
    if len(value) > 64:
        raise FormatError(f"user name '{value}' is too long ({len(value)} > 64)")
    if not _match(rf"({USER_RE})@({REALM_RE})", value):
        raise FormatError(f"value '{value}' does not look like a valid user name")
    return value


@_fmt("pve-tokenid")
def verify_tokenid(value: str) -> str:
    if not _match(rf"({USER_RE})@({REALM_RE})!({TOKEN_NAME_RE})", value):
        raise FormatError(f"value '{value}' does not look like a valid token ID")
    return value


STORAGE_CONTENT = ("images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import")


@_fmt("pve-storage-content")
def verify_storage_content(value: str) -> str:
    if value not in STORAGE_CONTENT and value != "none":
        raise FormatError(f"invalid content type '{value}'")
    return value


@_fmt("pve-task-status-type")
def verify_task_status_type(value: str) -> str:
    if not _match(r"(ok|error|warning|unknown)", value, re.I):
        raise FormatError(f"invalid status '{value}'")
    return value


@_fmt("pve-priv")
def verify_priv(value: str) -> str:
    from pvesim.access import ALL_PRIVS

    if value not in ALL_PRIVS:
        raise FormatError(f"invalid privilege '{value}'")
    return value


@_fmt("pve-startup-order")
def verify_startup(value: str) -> str:
    for part in value.split(","):
        if not part.strip():
            continue
        if not re.fullmatch(r"(order=)?\d+|up=\d+|down=\d+", part):
            raise FormatError("unable to parse startup options")
    return value


@_fmt("pve-ct-timezone")
def verify_ct_timezone(value: str) -> str:
    if value == "host" or _match(r"[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*", value):
        return value
    raise FormatError(f"invalid time zone '{value}'")


@_fmt("lxc-ip-with-ll-iface")
def verify_ip_with_ll_iface(value: str) -> str:
    addr = value.split("%", 1)[0]
    if not (_is_ipv4(addr) or _is_ipv6(addr)):
        raise FormatError(f"value '{value}' does not look like a valid IP address")
    return value


@_fmt("email")
def verify_email(value: str) -> str:
    if not _match(r"[^\s@]+@[^\s@]+\.[^\s@]+", value):
        raise FormatError("value does not look like a valid email address")
    return value


@_fmt("pve-lxc-mp-string")
def verify_mp_string(value: str) -> str:
    if re.search(r"(^|/)\.\.?(/|$)", value):
        raise FormatError(f"{value} contains illegal character sequences")
    return value


@_fmt("pve-lxc-dev-string")
def verify_dev_string(value: str) -> str:
    if not value.startswith("/dev/") or re.search(r"(^|/)\.\.?(/|$)", value):
        raise FormatError(f"{value} is not a valid device path")
    return value


_MOUNT_OPTS = r"(discard|lazytime|noatime|nodev|noexec|nosuid)"

NET_FORMAT: dict[str, Prop] = {
    "name": Prop(pattern=r"[-_.\w\d]+"),
    "bridge": Prop(optional=True, pattern=r"[-_.\w\d]+"),
    "hwaddr": Prop(optional=True, format="mac-addr"),
    "mtu": Prop("integer", optional=True, minimum=64, maximum=65535),
    "ip": Prop(optional=True, format="pve-ipv4-config"),
    "gw": Prop(optional=True, format="ipv4"),
    "ip6": Prop(optional=True, format="pve-ipv6-config"),
    "gw6": Prop(optional=True, format="ipv6"),
    "firewall": Prop("boolean", optional=True),
    "tag": Prop("integer", optional=True, minimum=1, maximum=4094),
    "trunks": Prop(optional=True, pattern=r"\d+(?:;\d+)*"),
    "rate": Prop("number", optional=True),
    "type": Prop(optional=True, enum=("veth",)),
    "link_down": Prop("boolean", optional=True),
    "host-managed": Prop("boolean", optional=True),
}

_MP_COMMON: dict[str, Prop] = {
    "volume": Prop(default_key=True, format="pve-lxc-mp-string"),
    "acl": Prop("boolean", optional=True),
    "mountoptions": Prop(optional=True, pattern=rf"{_MOUNT_OPTS}(;{_MOUNT_OPTS})*"),
    "quota": Prop("boolean", optional=True),
    "replicate": Prop("boolean", optional=True, default=1),
    "ro": Prop("boolean", optional=True),
    "shared": Prop("boolean", optional=True, default=0),
    "size": Prop(optional=True, format="disk-size"),
}

ROOTFS_FORMAT: dict[str, Prop] = dict(_MP_COMMON)

MP_FORMAT: dict[str, Prop] = {
    **_MP_COMMON,
    "mp": Prop(format="pve-lxc-mp-string"),
    "backup": Prop("boolean", optional=True),
    "keepattrs": Prop("boolean", optional=True, default=0),
}

FEATURES_FORMAT: dict[str, Prop] = {
    "mount": Prop(optional=True, pattern=r"[a-zA-Z0-9_; ]+"),
    "nesting": Prop("boolean", optional=True, default=0),
    "keyctl": Prop("boolean", optional=True, default=0),
    "fuse": Prop("boolean", optional=True, default=0),
    "mknod": Prop("boolean", optional=True, default=0),
    "force_rw_sys": Prop("boolean", optional=True, default=0),
}

DEV_FORMAT: dict[str, Prop] = {
    "path": Prop(optional=True, default_key=True, format="pve-lxc-dev-string"),
    "mode": Prop(optional=True, pattern=r"0[0-7]{3}"),
    "uid": Prop("integer", optional=True, minimum=0),
    "gid": Prop("integer", optional=True, minimum=0),
    "deny-write": Prop("boolean", optional=True, default=0),
}

UNUSED_FORMAT: dict[str, Prop] = {
    "volume": Prop(default_key=True, format="pve-volume-id"),
}

register_hash_format("lxc-net", NET_FORMAT)
register_hash_format("lxc-rootfs", ROOTFS_FORMAT)
register_hash_format("lxc-mp", MP_FORMAT)
