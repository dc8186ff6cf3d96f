"""The state the gateway's files are rendered from: a site's rows as plain, frozen values.

`load_state` is the only part of rendering that reads the database; `networking.render`
turns the values into files and re-exports these names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import Site


@dataclass(frozen=True)
class RouteEntry:
    id: int
    subdomain: str
    ip: str
    port: int
    protocol: str
    access: str


@dataclass(frozen=True)
class MappingEntry:
    id: int
    protocol: str
    external_port: int
    ip: str
    container_port: int
    name: str
    hostname: str


@dataclass(frozen=True)
class HostEntry:
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
    routes = tuple(
        RouteEntry(id=i, subdomain=sub, ip=str(ip), port=port, protocol=proto, access=access)
        for i, sub, port, proto, access, ip in Route.objects.filter(site=site, enabled=True)
        .exclude(container__status=gone)
        .order_by("subdomain", "id")
        .values_list("id", "subdomain", "backend_port", "protocol", "access", "container__ip")
    )
    mappings = tuple(
        MappingEntry(
            id=i,
            protocol=proto,
            external_port=ext,
            ip=str(ip),
            container_port=port,
            name=name,
            hostname=host,
        )
        for i, proto, ext, port, ip, name, host in PortMapping.objects.filter(site=site)
        .exclude(container__status=gone)
        .order_by("protocol", "external_port", "id")
        .values_list(
            "id",
            "protocol",
            "external_port",
            "container_port",
            "container__ip",
            "name",
            "container__hostname",
        )
    )
    hosts: list[HostEntry] = []
    for node in site.nodes.order_by("slot"):
        ip = node.published_ip
        if ip:
            hosts.append(HostEntry(kind="node", id=node.pk, name=node.name, ip=ip))
    hosts.extend(
        HostEntry(kind="container", id=i, name=name, ip=str(ip), mac=mac)
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
