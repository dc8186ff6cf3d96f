"""The endpoint NGINX's auth_request asks before it proxies to a protected route."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .models import Route, RouteAccess


def route_for_host(host: str) -> Route | None:
    label, _, domain = host.lower().rstrip(".").partition(".")
    if not label or not domain:
        return None
    return (
        Route.objects.select_related("container", "container__owner")
        .filter(subdomain=label, site__domain=domain, enabled=True)
        .exclude(container__status="deleted")
        .first()
    )


@never_cache
@require_GET
def gateway_auth(request: HttpRequest) -> HttpResponse:
    """204: let the request through; 401: sign in first; 403: not allowed.

    The route and its access level are looked up here, from the database, by the host
    NGINX reports, rather than trusted from the gateway's files.
    """
    route = route_for_host(request.headers.get("X-Original-Host", ""))
    if route is None:
        return HttpResponse(status=403)
    if route.access == RouteAccess.PUBLIC:
        return HttpResponse(status=204)
    user = request.user
    if not user.is_authenticated or not user.is_active:
        return HttpResponse(status=401)
    if route.access == RouteAccess.USERS:
        return HttpResponse(status=204)
    from auth.selectors import container_allows

    if container_allows(user, route.container, "open"):
        return HttpResponse(status=204)
    return HttpResponse(status=403)
