"""DHCP emulation: which IPv4 address a started CT gets on ``ip=dhcp``.

With ``--dhcp-hosts FILE`` (dnsmasq's dhcp-hostsfile format, one host per
line: ``[hwaddr][,id:..][,set:..][,ipaddr][,hostname][,leasetime]``) a CT's
hwaddr gets the address reserved for it. The file is re-read whenever its
mtime or size changes. Without a reservation the address comes from the
bridge's range, and stays leased to that hwaddr.
"""

from __future__ import annotations

import ipaddress
import re
import threading
from pathlib import Path

from pvesim.config import BridgeSpec

_MAC = re.compile(r"^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$")


def parse_hosts_file(text: str) -> dict[str, tuple[str | None, str | None]]:
    """hwaddr (upper case) -> (ip, hostname)."""
    out: dict[str, tuple[str | None, str | None]] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        macs: list[str] = []
        ip: str | None = None
        name: str | None = None
        for item in (f.strip() for f in line.split(",")):
            if not item or re.match(r"^(id|set|tag):", item) or item in ("ignore", "infinite"):
                continue
            if _MAC.match(item):
                macs.append(item.replace("-", ":").upper())
                continue
            try:
                ipaddress.IPv4Address(item)
                ip = item
                continue
            except ValueError:
                pass
            if re.fullmatch(r"\d+[smhdw]?", item):
                continue  # lease time
            name = item
        for mac in macs:
            out[mac] = (ip, name)
    return out


class DhcpEmulator:
    def __init__(self, hosts_file: Path | None, bridges: list[BridgeSpec]) -> None:
        self.hosts_file = Path(hosts_file) if hosts_file else None
        self.bridges = {b.name: b for b in bridges}
        self._stamp: tuple[float, int] | None = None
        self._hosts: dict[str, tuple[str | None, str | None]] = {}
        self._lock = threading.Lock()

    def reservations(self) -> dict[str, tuple[str | None, str | None]]:
        if self.hosts_file is None:
            return {}
        with self._lock:
            try:
                st = self.hosts_file.stat()
            except OSError:
                self._hosts, self._stamp = {}, None
                return {}
            stamp = (st.st_mtime, st.st_size)
            if stamp != self._stamp:
                try:
                    self._hosts = parse_hosts_file(self.hosts_file.read_text())
                except OSError:
                    self._hosts = {}
                self._stamp = stamp
            return dict(self._hosts)

    def bridge(self, name: str | None) -> BridgeSpec:
        if name and name in self.bridges:
            return self.bridges[name]
        return next(iter(self.bridges.values()))

    def address_for(
        self, hwaddr: str, bridge: str | None, leases: dict[str, str], taken: set[str]
    ) -> tuple[str, int]:
        """(ip, prefix) for a DHCP client; updates ``leases`` for new clients."""
        mac = hwaddr.upper()
        spec = self.bridge(bridge)
        reserved = self.reservations()
        ip = reserved.get(mac, (None, None))[0]
        if ip:
            return ip, spec.prefix
        if mac in leases:
            return leases[mac], spec.prefix
        blocked = {r[0] for r in reserved.values() if r[0]} | set(leases.values()) | taken
        first = int(ipaddress.IPv4Address(spec.first))
        last = int(ipaddress.IPv4Address(spec.last))
        for n in range(first, last + 1):
            candidate = str(ipaddress.IPv4Address(n))
            if candidate not in blocked and candidate != spec.gateway:
                leases[mac] = candidate
                return candidate, spec.prefix
        raise RuntimeError(f"no free address on {spec.name}")
