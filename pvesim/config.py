"""Simulator settings, from the command line or from :mod:`pvesim.testing`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from pvesim.formats import parse_size


class ConfigError(ValueError):
    pass


@dataclass
class TokenSpec:
    tokenid: str  # user@realm!name
    secret: str
    role: str | None = None  # restrict the token to this role on "/"


@dataclass
class UserSpec:
    userid: str
    password: str
    role: str | None = None


@dataclass
class RealmSpec:
    realm: str
    type: str
    comment: str = ""


@dataclass
class BridgeSpec:
    """Addresses handed out on a bridge when the DHCP hosts file has none."""

    name: str
    first: str
    last: str
    prefix: int
    gateway: str


@dataclass
class SimConfig:
    state_dir: Path
    nodes: tuple[str, ...] = ("pve1", "pve2")
    host: str = "127.0.0.1"
    port: int = 0
    tokens: list[TokenSpec] = field(default_factory=list)
    users: list[UserSpec] = field(default_factory=list)
    realms: list[RealmSpec] = field(default_factory=list)
    task_seconds: float = 1.0
    dhcp_hosts: Path | None = None
    auth_delay: float = 3.0
    lock_timeout: float = 10.0
    node_cpus: int = 16
    node_memory: int = 64 << 30
    node_storage: int = 512 << 30
    bridges: list[BridgeSpec] = field(default_factory=list)
    cluster_name: str = "pvesim"
    access_log: bool = False
    guest_emulation: bool = False  # a running CT on loopback gets a real sshd
    guest_user: str = "nobody"  # whom a CT's root is on the host (when run as root)
    guest_dir: Path | None = None  # where the CTs' directories live (default STATE/guests)

    def __post_init__(self) -> None:
        if not self.nodes:
            raise ConfigError("at least one node is needed")
        for node in self.nodes:
            if not re.fullmatch(r"[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?", node):
                raise ConfigError(f"invalid node name {node!r}")
        if not self.bridges:
            self.bridges = [BridgeSpec("vmbr0", "10.15.0.10", "10.15.254.254", 16, "10.15.0.1")]


def parse_token(spec: str) -> TokenSpec:
    """``USER@REALM!NAME=SECRET[:ROLE]``"""
    m = re.fullmatch(
        r"([^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]+![A-Za-z][A-Za-z0-9.\-_]+)=([^:\s]+)(?::(\S+))?", spec
    )
    if not m:
        raise ConfigError(f"invalid --token {spec!r}; expected USER@REALM!NAME=SECRET[:ROLE]")
    return TokenSpec(m.group(1), m.group(2), m.group(3))


def parse_user(spec: str) -> UserSpec:
    """``USER@REALM:PASSWORD``"""
    m = re.fullmatch(r"([^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]+):(.+)", spec, re.S)
    if not m:
        raise ConfigError(f"invalid --user {spec!r}; expected USER@REALM:PASSWORD")
    return UserSpec(m.group(1), m.group(2))


def parse_realm(spec: str) -> RealmSpec:
    """``NAME:TYPE[:COMMENT]`` with TYPE one of pam, pve, ldap, ad."""
    parts = spec.split(":", 2)
    if len(parts) < 2 or parts[1] not in ("pam", "pve", "ldap", "ad", "openid"):
        raise ConfigError(f"invalid --realm {spec!r}; expected NAME:TYPE[:COMMENT]")
    return RealmSpec(parts[0], parts[1], parts[2] if len(parts) > 2 else "")


def parse_bridge(spec: str) -> BridgeSpec:
    """``NAME=FIRST-LAST/PREFIX[,GATEWAY]``, e.g. ``vmbr0=10.15.0.10-10.15.254.254/16,10.15.0.1``"""
    m = re.fullmatch(r"([\w.\-]+)=([\d.]+)-([\d.]+)/(\d+)(?:,([\d.]+))?", spec)
    if not m:
        raise ConfigError(f"invalid --bridge {spec!r}")
    gw = m.group(5) or m.group(2).rsplit(".", 1)[0] + ".1"
    return BridgeSpec(m.group(1), m.group(2), m.group(3), int(m.group(4)), gw)


def parse_bytes(spec: str) -> int:
    size = parse_size(spec)
    if size is None:
        raise ConfigError(f"invalid size {spec!r}")
    return size
