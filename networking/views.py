"""The portal's side of protected routes: NGINX's auth_request check, the login bounce that
mints the gateway's credential, and the exchange that sets it on the route's host.

The portal's own session never reaches a route host (it is host-only); these views trade
it for a credential good only for the gateway's check (auth/gateway_access.py).
"""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from auth.gateway_access import (
    credential_exchange,
    credential_mint,
    credential_user,
    private_cookie_names,
    strip_cookies,
)
from containers import selectors as container_selectors

from . import selectors as networking_selectors
from .models import Route, RouteAccess

EXCHANGE_PATH = "/.cluster-portal/session"


def route_for_host(host: str) -> Route | None:
    label, _, domain = host.lower().rstrip(".").partition(".")
    if not label or not domain:
        return None
    return container_selectors.route_serving(label, domain)


@never_cache
@require_GET
def gateway_auth(request: HttpRequest) -> HttpResponse:
    """204: let the request through; 401: sign in first; 403: not allowed.

    The route and its access level are looked up here, from the database, by the host
    NGINX reports, rather than trusted from the gateway's files. Every answer carries
    `X-Gateway-Cookie`: the request's Cookie header less the gateway credential and the
    portal session, which is all the container will be sent.
    """
    host = request.headers.get("X-Original-Host", "")
    cookie_header = request.META.get("HTTP_COOKIE", "")
    status = _auth_status(host, cookie_header)
    response = HttpResponse(status=status)
    clean = strip_cookies(cookie_header, private_cookie_names())
    if clean:
        response["X-Gateway-Cookie"] = clean
    return response


def _auth_status(host: str, cookie_header: str) -> int:
    route = route_for_host(host)
    if route is None:
        return 403
    if route.access == RouteAccess.PUBLIC:
        return 204
    user = credential_user(cookie_header=cookie_header, host=host)
    if user is None:
        return 401
    if route.access == RouteAccess.USERS:
        return 204
    from auth.selectors import container_allows

    return 204 if container_allows(user, route.container, "open") else 403


def _route_target(raw: str) -> tuple[str, str] | None:
    """(origin, path) of an `https://<label>.<site domain>[:port]/path` on this gateway."""
    try:
        url = urlsplit(raw)
        port = url.port
    except ValueError:
        return None
    host = (url.hostname or "").lower()
    label, _, domain = host.partition(".")
    site = networking_selectors.site_for_domain(domain) if label else None
    if site is None or url.scheme != "https" or port not in (None, site.public_port):
        return None
    public_port = site.public_port  # the site's, not this web host's gateway settings
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    if not path.startswith("/") or path.startswith("//"):
        return None
    origin = f"https://{host}" + ("" if public_port == 443 else f":{public_port}")
    return origin, path


@never_cache
@require_GET
@login_required
def gateway_login(request: HttpRequest) -> HttpResponse:
    """On the portal's host: mint a one-time code for the route host the user came from
    and send the browser back there to exchange it.

    `next` is the last parameter and is taken raw (NGINX cannot URL-encode the request
    URI it appends), so a deep link survives the login.
    """
    _, sep, raw = request.META.get("QUERY_STRING", "").partition("next=")
    target = _route_target(raw) if sep else None
    if target is None:
        return render(request, "networking/gateway_bad_link.html", status=400)
    origin, path = target
    assert request.session.session_key  # login_required: an authenticated session
    code = credential_mint(
        user=request.user,  # type: ignore[arg-type]
        host=urlsplit(origin).hostname or "",
        session_key=request.session.session_key,
    )
    return HttpResponseRedirect(
        f"{origin}{EXCHANGE_PATH}?{urlencode({'code': code, 'next': path})}"
    )


@never_cache
@require_GET
def gateway_session(request: HttpRequest) -> HttpResponse:
    """Reached through the gateway on the route's host: the code becomes the host-only
    credential cookie, and the browser goes on to the page it asked for."""
    host = request.headers.get("X-Original-Host", "").lower()
    path = request.GET.get("next", "/")
    if not path.startswith("/") or path.startswith("//") or "\\" in path:
        path = "/"
    secret = credential_exchange(code=request.GET.get("code", ""), host=host)
    if secret is None:
        response = render(request, "networking/gateway_bad_link.html", {"retry": path}, status=403)
    else:
        response = HttpResponseRedirect(path)
        response.set_cookie(
            settings.GATEWAY_CREDENTIAL_COOKIE,
            secret,
            path="/",
            secure=True,
            httponly=True,
            samesite="Lax",
        )
    # The code must not travel on in a Referer to the container.
    response["Referrer-Policy"] = "no-referrer"
    return response
