"""The appliance index (``pveam available``) and the templates preloaded on
every node's ``local`` storage."""

from __future__ import annotations

import hashlib
from typing import Any

MIB = 1 << 20

# template, os, version, headline, size in MiB, preloaded on local storage
_APPLIANCES: list[tuple[str, str, str, str, int, bool]] = [
    (
        "debian-12-standard_12.7-1_amd64.tar.zst",
        "debian-12",
        "12.7-1",
        "Debian 12 Bookworm (standard)",
        123,
        True,
    ),
    (
        "debian-13-standard_13.1-2_amd64.tar.zst",
        "debian-13",
        "13.1-2",
        "Debian 13 Trixie (standard)",
        129,
        True,
    ),
    (
        "ubuntu-24.04-standard_24.04-2_amd64.tar.zst",
        "ubuntu-24.04",
        "24.04-2",
        "Ubuntu 24.04 Noble (standard)",
        141,
        True,
    ),
    (
        "ubuntu-22.04-standard_22.04-1_amd64.tar.zst",
        "ubuntu-22.04",
        "22.04-1",
        "Ubuntu 22.04 Jammy (standard)",
        124,
        False,
    ),
    (
        "rockylinux-9-default_20240912_amd64.tar.xz",
        "rockylinux-9",
        "20240912",
        "Rockylinux 9 (default)",
        84,
        True,
    ),
    (
        "alpine-3.22-default_20250617_amd64.tar.xz",
        "alpine-3.22",
        "20250617",
        "Alpine Linux 3.22 (default)",
        3,
        False,
    ),
    (
        "fedora-42-default_20250428_amd64.tar.xz",
        "fedora-42",
        "20250428",
        "Fedora 42 (default)",
        92,
        False,
    ),
]

# ostype pve-container detects from the unpacked template
OSTYPE_BY_PREFIX = {
    "debian": "debian",
    "ubuntu": "ubuntu",
    "rockylinux": "centos",
    "almalinux": "centos",
    "centos": "centos",
    "alpine": "alpine",
    "fedora": "fedora",
    "archlinux": "archlinux",
}


def _sha512(name: str) -> str:
    return hashlib.sha512(name.encode()).hexdigest()


def appliances() -> list[dict[str, Any]]:
    out = []
    for template, os_, version, headline, _size, _pre in _APPLIANCES:
        package = template.split("_", 1)[0]
        out.append(
            {
                "template": template,
                "package": package,
                "version": version,
                "os": os_.split("-")[0],
                "section": "system",
                "type": "lxc",
                "headline": headline,
                "description": f"{headline} image.",
                "location": f"http://download.proxmox.com/images/system/{template}",
                "sha512sum": _sha512(template),
                "maintainer": "Proxmox Support Team <support@proxmox.com>",
                "infopage": "https://pve.proxmox.com/wiki/Linux_Container#pct_supported_distributions",
                "source": "https://pve.proxmox.com/wiki/Linux_Container",
                "architecture": "amd64",
            }
        )
    return out


def appliance(template: str) -> dict[str, Any] | None:
    return next((a for a in appliances() if a["template"] == template), None)


def template_size(template: str) -> int:
    for name, *_rest, size_mib, _pre in _APPLIANCES:
        if name == template:
            return size_mib * MIB
    return 100 * MIB


def preloaded() -> list[str]:
    return [a[0] for a in _APPLIANCES if a[5]]


def ostype_for(template: str) -> str:
    base = template.rsplit("/", 1)[-1]
    for prefix, ostype in OSTYPE_BY_PREFIX.items():
        if base.startswith(prefix):
            return ostype
    return "unmanaged"


def template_format(template: str) -> str:
    for ext, fmt in ((".tar.zst", "tzst"), (".tar.xz", "txz"), (".tar.gz", "tgz"), (".tar", "tar")):
        if template.endswith(ext):
            return fmt
    return "raw"
