"""The state the gateway's files are rendered from: a site's rows as plain, frozen values.

`load_state` is the only part of rendering that reads the database; `networking.render`
turns the values into files and re-exports these names. Entries are named tuples: a site
has tens of thousands of them, and a tuple is built (and transposed into columns for the
render's checks) several times faster than a frozen dataclass.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from .models import Site


class RouteEntry(NamedTuple):
    id: int
    subdomain: str
    ip: str
    port: int
    protocol: str
    access: str


class MappingEntry(NamedTuple):
    id: int
    protocol: str
    external_port: int
    ip: str
    container_port: int
    name: str
    hostname: str


class HostEntry(NamedTuple):
    kind: str  # "node" or "container"
    id: int
    name: str
    ip: str
    mac: str = ""


@dataclass(frozen=True)
class SiteState:
    slug: str
    name: str
    domain: str
    internal_domain: str
    subnet: str
    gateway_ip: str
    dhcp_start: str
    dhcp_end: str
    forwarders: tuple[str, ...] = ()
    routes: tuple[RouteEntry, ...] = ()
    mappings: tuple[MappingEntry, ...] = ()
    hosts: tuple[HostEntry, ...] = ()
    # A placeholder for a gateway with no site yet: no TLS server, no DNS zone.
    bootstrap: bool = False


def bootstrap_state() -> SiteState:
    return SiteState(
        slug="bootstrap",
        name="(no site yet)",
        domain="gateway.invalid",
        internal_domain="gateway.invalid",
        subnet="127.0.0.0/8",
        gateway_ip="127.0.0.1",
        dhcp_start="127.0.0.1",
        dhcp_end="127.0.0.1",
        bootstrap=True,
    )


def load_state(site: Site) -> SiteState:
    """The site's gateway-relevant rows as plain values (the only part that reads the DB).

    Deleted containers are left out here as well as released, so a row left behind by
    a failed release is never published.
    """
    from containers.models import LIVE, Container, ContainerStatus

    from .models import PortMapping, Route
    from .validators import parse_forwarders

    gone = ContainerStatus.DELETED
    # Columns in the entries' field order, so each row becomes its entry as it is.
    routes = tuple(
        map(
            RouteEntry._make,
            Route.objects.filter(site=site, enabled=True)
            .exclude(container__status=gone)
            .order_by("subdomain", "id")
            .values_list("id", "subdomain", "container__ip", "backend_port", "protocol", "access"),
        )
    )
    mappings = tuple(
        map(
            MappingEntry._make,
            PortMapping.objects.filter(site=site)
            .exclude(container__status=gone)
            .order_by("protocol", "external_port", "id")
            .values_list(
                "id",
                "protocol",
                "external_port",
                "container__ip",
                "container_port",
                "name",
                "container__hostname",
            ),
        )
    )
    hosts: list[HostEntry] = []
    # Only what published_ip reads: a whole node would decrypt its API token.
    for node in site.nodes.order_by("slot").only("id", "name", "ip", "api_url"):
        ip = node.published_ip
        if ip:
            hosts.append(HostEntry(kind="node", id=node.pk, name=node.name, ip=ip))
    hosts.extend(
        HostEntry("container", i, name, ip, mac)
        for i, name, ip, mac in Container.objects.filter(LIVE, site=site)
        .order_by("hostname", "id")
        .values_list("id", "hostname", "ip", "mac")
    )
    try:
        forwarders = tuple(parse_forwarders(site.dns_forwarders))
    except Exception:
        # Checked one by one in render, where a bad one is left out with its reason.
        forwarders = tuple(f for f in re.split(r"[\s,]+", site.dns_forwarders or "") if f)
    return SiteState(
        slug=site.slug,
        name=site.name,
        domain=site.domain,
        internal_domain=site.internal_domain,
        subnet=site.subnet,
        gateway_ip=str(site.gateway_ip),
        dhcp_start=str(site.dhcp_range_start),
        dhcp_end=str(site.dhcp_range_end),
        forwarders=forwarders,
        routes=routes,
        mappings=mappings,
        hosts=tuple(hosts),
    )
