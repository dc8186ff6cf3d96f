"""The networking core's writes: a container's own name and SSH port, and gateway applies.

Every function that allocates locks the site's row first (as `container_create` does),
so concurrent requests never choose the same port or name. Every change asks for a
gateway apply once its transaction commits (`request_apply`); applies are coalesced per
site, run by the gateway layer (networking/tasks.py) and awaited with `wait_for_apply`.
A container's other routes and ports are networking/publishing.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import DateTimeField, F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from portal.errors import (
    ApplyFailed,
    Conflict,
    ErrorCode,
    InvalidState,
    ResourceExhausted,
    UpstreamError,
    UpstreamUnavailable,
    ValidationFailed,
)
from portal.gateway_defaults import listen_port, shard_status_listen

from .allocation import free_port, release_ports
from .models import (
    ConfigRevision,
    GatewayState,
    PortMapping,
    PortProtocol,
    RevisionStatus,
    Route,
    RouteAccess,
    RouteProtocol,
    Site,
)

if TYPE_CHECKING:
    from containers.models import Container

log = logging.getLogger(__name__)

SSH_PORT = 22
# The gateway layer's apply task (networking/tasks.py), queued by name from below it.
APPLY_TASK = "networking.apply_gateway"


@dataclass(frozen=True)
class ContainerNetwork:
    route: Route
    ssh: PortMapping
    generation: int  # the gateway generation that publishes them


def lock_site(site_id: int) -> Site:
    # Re-entrant inside container_create's transaction, which already holds this lock.
    return Site.objects.select_for_update().get(pk=site_id)


def gateway_own_ports() -> set[int]:
    """Ports the gateway itself listens on; never handed out to a container."""
    listens = [
        *settings.GATEWAY_HTTP_LISTEN,
        *settings.GATEWAY_HTTPS_LISTEN,
        settings.GATEWAY_STATUS_LISTEN,
    ]
    ports = {p for p in map(listen_port, listens) if p}
    ports.add(int(settings.GATEWAY_DNS_PORT))
    status, shards = settings.GATEWAY_STATUS_LISTEN, int(settings.GATEWAY_STREAM_SHARDS)
    ports.update(listen_port(shard_status_listen(status, i)) for i in range(shards))
    ports.discard(0)
    return ports


def clean_row(obj: Route | PortMapping) -> None:
    # Field validation only: the site and container were just read under the site lock,
    # and callers check names and ports (the constraints back them up).
    try:
        obj.full_clean(
            exclude=["site", "container"], validate_unique=False, validate_constraints=False
        )
    except ValidationError as exc:
        raise ValidationFailed("; ".join(exc.messages)) from exc


def choose_external_port(site: Site, protocol: str, *, ssh: bool) -> int:
    low, high = (
        (site.ssh_port_min, site.ssh_port_max)
        if ssh
        else (site.service_port_min, site.service_port_max)
    )
    held = PortMapping.objects.filter(site=site, protocol=protocol)
    try:
        return free_port(site.pk, protocol, low, high, held=held, blocked=gateway_own_ports())
    except ResourceExhausted as exc:
        kind = "SSH" if ssh else "service"
        raise ResourceExhausted(
            f"no free {protocol.upper()} {kind} port left on {site.name} ({low}-{high}); "
            "an operator can widen the site's port range",
            code=ErrorCode.PORTS_EXHAUSTED,
        ) from exc


def require_free_subdomain(site: Site, subdomain: str, *, exclude_pk: int | None = None) -> None:
    taken = Route.objects.filter(site=site, subdomain=subdomain)
    if exclude_pk:
        taken = taken.exclude(pk=exclude_pk)
    if taken.exists():
        raise Conflict(
            f"the name '{subdomain}' is already used on {site.name}",
            code=ErrorCode.SUBDOMAIN_TAKEN,
            field="subdomain",
        )


def save_row(obj: Route | PortMapping) -> None:
    # No savepoint: a conflict aborts the caller's whole transaction anyway.
    try:
        with transaction.atomic(savepoint=False):
            obj.save()
    except IntegrityError as exc:
        # The site lock makes this unreachable; never let it reach a user raw.
        raise Conflict(
            "another request took the same name or port; try again",
            code=ErrorCode.ALLOCATION_CONFLICT,
        ) from exc


# -- created with the container -----------------------------------------------------------------
def container_network_allocate(
    *,
    container: Container,
    http_port: int = 80,
    http_protocol: str = RouteProtocol.HTTP,
    access: str = RouteAccess.USERS,
    ssh_port: int = SSH_PORT,
) -> ContainerNetwork:
    """The default route (subdomain = hostname) and the SSH port mapping of a new container.

    Its route is for signed-in portal users unless the owner chose otherwise: nothing is
    open to anyone by default.

    Called by `container_create` inside its transaction, under the site's row lock
    (`container.site` is the row it locked).
    """
    site = container.site
    require_free_subdomain(site, container.hostname)
    route = Route(
        site=site,
        container=container,
        name="",
        subdomain=container.hostname,
        backend_port=http_port,
        protocol=http_protocol,
        access=access,
    )
    clean_row(route)
    save_row(route)
    ssh = PortMapping(
        site=site,
        container=container,
        name="ssh",
        protocol=PortProtocol.TCP,
        container_port=ssh_port,
        external_port=choose_external_port(site, PortProtocol.TCP, ssh=True),
    )
    clean_row(ssh)
    save_row(ssh)
    # Published as soon as the create commits, so the DHCP reservation is in place
    # before Proxmox boots the container.
    generation = request_apply(site, reason=f"create {container.hostname}")
    return ContainerNetwork(route=route, ssh=ssh, generation=generation)


def container_route_point(*, container: Container, backend_port: int, access: str) -> int | None:
    """Point a container's default route at `backend_port`, open to `access`, and queue an
    apply when that changes anything. For a deploy, which publishes the app's port.

    The gateway generation to wait for, or None when the route was already so.
    """
    with transaction.atomic():
        route = Route.objects.select_for_update().filter(container=container, name="").first()
        if route is None:
            raise InvalidState(f"{container.hostname} has no web address to publish")
        if (route.backend_port, route.access, route.enabled) == (backend_port, access, True):
            return None
        route.backend_port, route.access, route.enabled = backend_port, access, True
        clean_row(route)
        route.save(update_fields=["backend_port", "access", "enabled", "updated_at"])
        return request_apply(
            container.site_id, reason=f"publish {container.hostname}:{backend_port}"
        )


def container_network_release(*, container: Container) -> tuple[int, int]:
    """Drop a deleted container's routes and port mappings: names and ports are free again."""
    with transaction.atomic():
        routes, _ = Route.objects.filter(container=container).delete()
        held = PortMapping.objects.filter(container=container)
        release_ports(container.site_id, held.values_list("protocol", "external_port"))
        mappings, _ = held.delete()
        request_apply(container.site_id, reason=f"release {container.hostname}")
    return routes, mappings


# -- applies ---------------------------------------------------------------------------------------
def request_apply(site: Site | int, *, reason: str = "") -> int:
    """Bump the site's generation and, once the transaction commits, queue an apply.

    Returns the generation: a job waits until an apply covering it has succeeded.
    The bump is an UPDATE on one row, so generations are handed out in commit order,
    and an apply that reads generation N sees every change up to N.
    """
    site_id = site.pk if isinstance(site, Site) else int(site)
    slug = site.slug if isinstance(site, Site) else None
    with transaction.atomic(savepoint=False):
        state = GatewayState.objects.filter(site_id=site_id)
        # The first change not yet applied starts the wait /readyz measures.
        bump = {
            "requested": F("requested") + 1,
            "pending_since": Coalesce(
                F("pending_since"), Value(timezone.now()), output_field=DateTimeField()
            ),
        }
        if not state.update(**bump):
            GatewayState.objects.get_or_create(site_id=site_id)
            state.update(**bump)
        generation = int(state.values_list("requested", flat=True).get())
    log.debug("site %s: gateway generation %s (%s)", site_id, generation, reason)
    transaction.on_commit(lambda: enqueue_apply(site_id, slug=slug), robust=True)
    return generation


def enqueue_apply(site_id: int, *, slug: str | None = None) -> None:
    """Queue the site's apply on its gateway's queue, by task name: the apply lives in
    the gateway layer above this one (networking/tasks.py)."""
    from portal.celery import gateway_queue, send_by_name

    if slug is None:
        slug = Site.objects.values_list("slug", flat=True).get(pk=site_id)
    send_by_name(APPLY_TASK, args=(site_id,), queue=gateway_queue(slug))


def wait_for_apply(
    site: Site,
    generation: int,
    *,
    timeout: float | None = None,
    on_poll: Callable[[], None] | None = None,
) -> ConfigRevision | None:
    """Block until a successful apply covers `generation`; raise if one covering it failed."""
    timeout = settings.GATEWAY_APPLY_TIMEOUT if timeout is None else timeout
    deadline = time.monotonic() + timeout
    while True:
        applied = (
            GatewayState.objects.filter(site=site).values_list("applied", flat=True).first() or 0
        )
        if applied >= generation:
            return (
                ConfigRevision.objects.filter(site=site, generation__gte=generation)
                .exclude(status=RevisionStatus.FAILED)
                .order_by("id")
                .first()
            )
        failed = (
            ConfigRevision.objects.filter(
                site=site, generation__gte=generation, status=RevisionStatus.FAILED
            )
            .order_by("-id")
            .first()
        )
        if failed is not None:
            message = f"the gateway of {site.name} could not apply the change: {failed.error}"
            if failed.error_code in ApplyFailed.TRANSIENT:
                raise UpstreamUnavailable(
                    message, code=ErrorCode.GATEWAY_UNAVAILABLE, revision=failed.pk
                )
            raise UpstreamError(message, code=ErrorCode.GATEWAY_FAILED, revision=failed.pk)
        if time.monotonic() > deadline:
            raise UpstreamUnavailable(
                f"the gateway of {site.name} has not applied the change within {timeout:.0f} s; "
                f"is its worker (queue gateway.{site.slug}) running?",
                code=ErrorCode.GATEWAY_TIMEOUT,
            )
        if on_poll:
            on_poll()
        time.sleep(0.05)
