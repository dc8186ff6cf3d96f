"""/readyz and /metrics: thin faces over readiness.py and metrics.py."""

from __future__ import annotations

import hmac
import ipaddress
import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from auth.audit import client_address

from .metrics import registry
from .readiness import readiness

log = logging.getLogger(__name__)

# One registry per process: the collector holds no state, it reads the database.
REGISTRY = registry()


@require_safe
@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """200 when every check passes, 503 naming the ones that failed."""
    ready, body = readiness()
    return JsonResponse(body, status=200 if ready else 503)


@require_safe
@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    if not metrics_allowed(request):
        return HttpResponseForbidden("metrics: a bearer token or an allowed address is needed\n")
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)


def metrics_allowed(request: HttpRequest) -> bool:
    """The METRICS_TOKEN as a bearer token, or a client address in METRICS_ALLOW."""
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer "):
        return hmac.compare_digest(header.removeprefix("Bearer ").strip(), token)
    if request.META.get("HTTP_X_FORWARDED_FOR") and not settings.AXES_IPWARE_PROXY_COUNT:
        # Proxied, and the proxy's hops are not configured: REMOTE_ADDR is the proxy
        # (often loopback), not the client, so the address proves nothing.
        return False
    address = client_address(request)
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in _allowed_networks())


def _allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    networks = []
    for entry in settings.METRICS_ALLOW:
        if not entry.strip():
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            log.warning("METRICS_ALLOW: %r is not a network; ignored", entry)
    return networks
