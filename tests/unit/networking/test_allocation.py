from __future__ import annotations

import ipaddress

import pytest

from networking.allocation import choose_ip, mac_for
from networking.validators import parse_ranges
from portal.errors import ResourceExhausted


def test_first_free_address_outside_excluded_ranges() -> None:
    net = ipaddress.IPv4Network("10.15.0.0/16")
    excluded = parse_ranges("10.15.0.0-10.15.0.255\n10.15.1.5")
    assert choose_ip(net, excluded=excluded, used=[]) == "10.15.1.0"
    assert (
        choose_ip(
            net,
            excluded=excluded,
            used=["10.15.1.0", "10.15.1.1", "10.15.1.2", "10.15.1.3", "10.15.1.4"],
        )
        == "10.15.1.6"
    )


def test_full_subnet_is_resource_exhausted() -> None:
    net = ipaddress.IPv4Network("10.0.0.0/29")  # hosts .1-.6
    with pytest.raises(ResourceExhausted, match="no free address left in 10.0.0.0/29"):
        choose_ip(
            net,
            excluded=[(int(ipaddress.IPv4Address("10.0.0.1")),) * 2],
            used=[f"10.0.0.{i}" for i in range(2, 7)],
        )


def test_mac_is_locally_administered_unicast_and_unique_per_ip() -> None:
    macs = {mac_for(1, f"10.15.1.{i}") for i in range(1, 255)}
    assert len(macs) == 254
    for mac in macs:
        first = int(mac.split(":")[0], 16)
        assert first & 0x02 and not first & 0x01
    assert mac_for(1, "10.15.1.7") == "02:01:0A:0F:01:07"
