"""Reads about the gateway that other apps' faces need."""

from __future__ import annotations

from .models import Site
from .render import GatewayOptions


def gateway_origins() -> list[str]:
    """Every route host's origin as a CSP source (`https://*.<domain>[:port]`), one per site."""
    port = GatewayOptions.from_settings().public_port
    suffix = "" if port == 443 else f":{port}"
    domains = Site.objects.order_by("domain").values_list("domain", flat=True)
    return [f"https://*.{domain}{suffix}" for domain in domains]
