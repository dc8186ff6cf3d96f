"""How the portal marks its CTs on Proxmox, and how it reads a CT's config back.

Every CT the portal makes carries two tags: the managed tag (PROXMOX_MANAGED_TAG) and
`ct-<container id>`. The pair says whose CT it is, so a VMID reused by someone else, or
a CT left behind by a deleted container, is never taken for the wrong one.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from django.conf import settings

if TYPE_CHECKING:
    from .models import Container

_CT_TAG = re.compile(r"^ct-(\d+)$")
_SIZE = re.compile(r"(?:^|,)size=(\d+(?:\.\d+)?)([KMGT]?)(?:,|$)")
_UNIT_GIB = {"K": 1 / 1024**2, "M": 1 / 1024, "G": 1.0, "T": 1024.0, "": 1 / 1024**3}


def managed_tags(container: Container) -> str:
    return f"{settings.PROXMOX_MANAGED_TAG};ct-{container.pk}"


def tag_set(raw: Any) -> set[str]:
    return {t for t in str(raw or "").replace(",", ";").replace(" ", ";").split(";") if t}


def is_managed(tags: Any) -> bool:
    return settings.PROXMOX_MANAGED_TAG in tag_set(tags)


def container_id_of(tags: Any) -> int | None:
    """The portal container a CT's tags name (`ct-<id>`), if any."""
    for tag in tag_set(tags):
        if m := _CT_TAG.match(tag):
            return int(m.group(1))
    return None


def is_ours(config: dict[str, Any], container: Container) -> bool:
    tags = tag_set(config.get("tags"))
    return settings.PROXMOX_MANAGED_TAG in tags and f"ct-{container.pk}" in tags


def net_option(net: Any, key: str) -> str:
    for part in str(net or "").split(","):
        name, _, value = part.partition("=")
        if name == key:
            return value
    return ""


def with_net_option(net: Any, key: str, value: str) -> str:
    """The net0 property string with one option set, the others kept as they were."""
    parts = [p for p in str(net or "").split(",") if p]
    out = [f"{key}={value}" if p.partition("=")[0] == key else p for p in parts]
    if not any(p.partition("=")[0] == key for p in parts):
        out.append(f"{key}={value}")
    return ",".join(out)


def rootfs_gib(rootfs: Any) -> int | None:
    """The size of a `rootfs` property string in whole GiB (None: not stated)."""
    m = _SIZE.search(str(rootfs or ""))
    if not m:
        return None
    return round(float(m.group(1)) * _UNIT_GIB[m.group(2)])


def observed(config: dict[str, Any]) -> dict[str, str]:
    """The values of a CT's config that the portal also records, as text."""
    return {
        "hostname": str(config.get("hostname", "")),
        "cores": str(config.get("cores", "all")),  # unset: every core of the node
        "memory": str(config.get("memory", 512)),
        "swap": str(config.get("swap", 512)),
        "mac": net_option(config.get("net0"), "hwaddr").upper(),
        "disk": str(rootfs_gib(config.get("rootfs")) or "?"),
    }


def recorded(container: Container) -> dict[str, str]:
    """The same values as the portal records them."""
    return {
        "hostname": container.hostname,
        "cores": str(container.cores),
        "memory": str(container.memory_mib),
        "swap": str(container.swap_mib),
        "mac": container.mac.upper(),
        "disk": str(container.disk_gib),
    }


def differences(container: Container, config: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """{field: (portal, proxmox)} for every recorded value Proxmox holds differently."""
    seen, mine = observed(config), recorded(container)
    return {k: (mine[k], seen[k]) for k in mine if mine[k] != seen[k]}


# The values the portal owns and puts back; the disk is only reported (Proxmox cannot shrink it).
PORTAL_OWNS = ("hostname", "cores", "memory", "swap", "mac")


def config_changes(container: Container, config: dict[str, Any]) -> dict[str, Any]:
    """The PUT /config parameters that give the CT the portal's values and tags."""
    diff = differences(container, config)
    changes: dict[str, Any] = {}
    if "hostname" in diff:
        changes["hostname"] = container.hostname
    for field, param, value in (
        ("cores", "cores", container.cores),
        ("memory", "memory", container.memory_mib),
        ("swap", "swap", container.swap_mib),
    ):
        if field in diff:
            changes[param] = value
    if "mac" in diff:
        changes["net0"] = with_net_option(config.get("net0"), "hwaddr", container.mac.upper())
    tags = tag_set(config.get("tags"))
    wanted = tag_set(managed_tags(container))
    stale = {t for t in tags if _CT_TAG.match(t)} - wanted
    if not wanted <= tags or stale:
        changes["tags"] = ";".join(sorted((tags - stale) | wanted))
    return changes
