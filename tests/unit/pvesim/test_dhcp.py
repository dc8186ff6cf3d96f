"""DHCP emulation: reservations from a dnsmasq dhcp-hostsfile, re-read on change."""

from __future__ import annotations

from pathlib import Path

from pvesim.config import BridgeSpec
from pvesim.dhcp import DhcpEmulator, parse_hosts_file

MAC1 = "BC:24:11:AA:00:01"
MAC2 = "BC:24:11:AA:00:02"


def test_parse_hosts_file() -> None:
    text = "\n".join(
        [
            "# reservations",
            f"{MAC1},10.15.3.7,web1",
            f"{MAC2.lower()},set:portal,10.15.3.8,db,infinite",
            "bc-24-11-aa-00-03,id:*,10.15.3.9",
            "bc:24:11:aa:00:04,api,12h",
            "",
        ]
    )
    hosts = parse_hosts_file(text)
    assert hosts[MAC1] == ("10.15.3.7", "web1")
    assert hosts[MAC2] == ("10.15.3.8", "db")
    assert hosts["BC:24:11:AA:00:03"] == ("10.15.3.9", None)
    assert hosts["BC:24:11:AA:00:04"] == (None, "api")


def test_range_allocation_skips_reserved_and_taken(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text(f"{MAC1},10.15.0.10\n")
    dhcp = DhcpEmulator(hosts, [BridgeSpec("vmbr0", "10.15.0.10", "10.15.0.20", 24, "10.15.0.1")])
    leases: dict[str, str] = {}
    assert dhcp.address_for(MAC1, "vmbr0", leases, set()) == ("10.15.0.10", 24)
    assert dhcp.address_for(MAC2, "vmbr0", leases, {"10.15.0.11"}) == ("10.15.0.12", 24)
    assert dhcp.address_for(MAC2.lower(), None, leases, set()) == ("10.15.0.12", 24)  # stable lease
