"""Reads about the gateway that other apps' faces need."""

from __future__ import annotations

from django.conf import settings
from django.db.models import QuerySet

from portal.gateway_defaults import public_port

from .models import Node, NodeState, Site


def gateway_origins() -> list[str]:
    """Every route host's origin as a CSP source (`https://*.<domain>[:port]`), one per site."""
    port = public_port(settings.GATEWAY_PUBLIC_HTTPS_PORT, settings.GATEWAY_HTTPS_LISTEN)
    suffix = "" if port == 443 else f":{port}"
    domains = Site.objects.order_by("domain").values_list("domain", flat=True)
    return [f"https://*.{domain}{suffix}" for domain in domains]


def nodes_down(*, node: Node | None = None) -> list[Node]:
    """Nodes the health checks marked offline (containers/health.py): all, or just `node`."""
    qs: QuerySet[Node] = Node.objects.filter(state=NodeState.OFFLINE).order_by("site_id", "name")
    if node is not None:
        qs = qs.filter(pk=node.pk)
    return list(qs)


def site_for_domain(domain: str) -> Site | None:
    """The site whose routes live under `domain` (only its public port is read)."""
    return Site.objects.filter(domain=domain).only("public_port").first()
