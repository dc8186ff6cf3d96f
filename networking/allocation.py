"""Address allocation: pure functions over what is already used.

The callers (services) hold the site's row lock while they choose and insert, so
concurrent requests never pick the same address.
"""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Iterable

from portal.errors import ErrorCode, ResourceExhausted


def _merge(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def choose_ip(
    network: ipaddress.IPv4Network, *, excluded: Iterable[tuple[int, int]], used: Iterable[str]
) -> str:
    """The lowest host address of the network outside the excluded ranges and not used."""
    first = int(network.network_address) + 1
    last = int(network.broadcast_address) - 1
    blocked = _merge([*excluded, *((int(ipaddress.IPv4Address(u)),) * 2 for u in used)])
    starts = [lo for lo, _ in blocked]
    candidate = first
    while candidate <= last:
        i = bisect.bisect_right(starts, candidate) - 1
        if i >= 0 and blocked[i][0] <= candidate <= blocked[i][1]:
            candidate = blocked[i][1] + 1
            continue
        return str(ipaddress.IPv4Address(candidate))
    raise ResourceExhausted(f"no free address left in {network}", code=ErrorCode.IP_EXHAUSTED)


def mac_for(site_id: int, ip: str) -> str:
    """A locally administered unicast MAC derived from the site and the address.

    Unique wherever the IP is unique, and stable: the same address always gets the
    same MAC, so no ARP cache or DHCP lease ever sees one address with two MACs.
    """
    octets = [0x02, site_id & 0xFF, *ipaddress.IPv4Address(ip).packed]
    return ":".join(f"{o:02X}" for o in octets)


def choose_port(low: int, high: int, *, used: Iterable[int], blocked: Iterable[int] = ()) -> int:
    """The lowest port in [low, high] that is neither used nor blocked."""
    taken = set(used) | set(blocked)
    for port in range(low, high + 1):
        if port not in taken:
            return port
    raise ResourceExhausted(f"no free port left in {low}-{high}", code=ErrorCode.PORTS_EXHAUSTED)
