"""CT configuration files: rendering, digest, typed values, property strings."""

from __future__ import annotations

import hashlib
import random
import re
import urllib.parse
from typing import Any

from pvesim import apidefs, formats
from pvesim.schema import parse_property_string, print_property_string, split_list

NEW_DISK_RE = re.compile(r"^(?:([^/:\s]+):)?(\d+(\.\d+)?)$")
GIB = 1 << 30

# Keys that never go into a snapshot section's parent chain handling.
SNAPSHOT_META = ("snaptime", "snapstate", "parent")


def encode_text(text: str) -> str:
    """PVE::Tools::encode_text: escape ':' and everything outside printable ASCII."""
    safe = "".join(chr(c) for c in range(0x20, 0x7F) if c != 0x3A)
    return urllib.parse.quote(text, safe=safe)


def decode_text(text: str) -> str:
    return urllib.parse.unquote(text)


def normalize_description(text: str) -> str:
    """What ``split(/\\n/)`` keeps: trailing newlines are dropped."""
    return text.rstrip("\n")


def description_out(stored: str) -> str:
    """Read back as Proxmox does: every comment line gets a newline."""
    return "".join(line + "\n" for line in stored.split("\n"))


def normalize_tags(text: str) -> str:
    """Unique (case-insensitive) and sorted, as pve-guest-common stores tags."""
    seen: dict[str, str] = {}
    for tag in split_list(text):
        seen.setdefault(tag.lower(), tag)
    return ";".join(sorted(seen.values(), key=str.lower))


def _section(conf: dict[str, Any]) -> str:
    out = ""
    desc = conf.get("description")
    if desc:
        for line in str(desc).split("\n"):
            out += "#" + encode_text(line) + "\n"
    for key in sorted(conf):
        if key in ("description", "digest"):
            continue
        out += f"{key}: {conf[key]}\n"
    return out


def config_text(conf: dict[str, Any], snapshots: dict[str, dict[str, Any]]) -> str:
    text = _section(conf)
    for name in sorted(snapshots):
        text += f"\n[{name}]\n" + _section(snapshots[name])
    return text


def digest(conf: dict[str, Any], snapshots: dict[str, dict[str, Any]]) -> str:
    return hashlib.sha1(config_text(conf, snapshots).encode()).hexdigest()  # noqa: S324 - PVE uses sha1


def typed_config(conf: dict[str, Any]) -> dict[str, Any]:
    """The JSON a config GET returns: integers/booleans as numbers."""
    out: dict[str, Any] = {}
    for key, value in conf.items():
        prop = apidefs.LXC_OPTIONS.get(key)
        if key == "description":
            out[key] = description_out(str(value))
        elif (prop is not None and prop.type in ("integer", "boolean")) or key in ("snaptime",):
            out[key] = int(value)
        else:
            out[key] = value
    return out


def random_mac() -> str:
    """A Proxmox-style MAC: the BC:24:11 prefix PVE 8+ uses by default."""
    tail = [random.randint(0, 255) for _ in range(3)]
    return "BC:24:11:" + ":".join(f"{b:02X}" for b in tail)


def parse_net(value: str) -> dict[str, Any]:
    return parse_property_string(formats.NET_FORMAT, value)


def print_net(net: dict[str, Any]) -> str:
    return print_property_string(net, formats.NET_FORMAT)


def normalize_net(value: str) -> str:
    """parse_lxc_network: default type=veth and a random hwaddr."""
    net = parse_net(value)
    net.setdefault("type", "veth")
    if not net.get("hwaddr"):
        net["hwaddr"] = random_mac()
    return print_net(net)


def parse_mp(key: str, value: str) -> dict[str, Any]:
    fmt = formats.ROOTFS_FORMAT if key == "rootfs" else formats.MP_FORMAT
    return parse_property_string(fmt, value)


def print_mp(key: str, mp: dict[str, Any]) -> str:
    fmt = formats.ROOTFS_FORMAT if key == "rootfs" else formats.MP_FORMAT
    return print_property_string(mp, fmt)


def print_features(value: str) -> str:
    return print_property_string(
        parse_property_string(formats.FEATURES_FORMAT, value), formats.FEATURES_FORMAT
    )


def is_mountpoint_key(key: str) -> bool:
    return key == "rootfs" or re.fullmatch(r"mp\d+", key) is not None


def volume_of(conf: dict[str, Any], key: str) -> str | None:
    value = conf.get(key)
    if not value:
        return None
    return str(parse_mp(key, str(value)).get("volume") if is_mountpoint_key(key) else value)
