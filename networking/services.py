"""Writes to the gateway's database state: routes, port mappings, apply requests.

Every function that allocates locks the site's row first (as `container_create` does),
so concurrent requests never choose the same port or name. Every change asks for a
gateway apply once its transaction commits; applies are coalesced per site.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from portal.errors import Conflict, InvalidState, ResourceExhausted, ValidationFailed

from .allocation import choose_port
from .models import (
    GatewayState,
    Node,
    PortMapping,
    PortProtocol,
    Route,
    RouteAccess,
    RouteProtocol,
    Site,
)
from .validators import validate_hostname

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from containers.models import Container

log = logging.getLogger(__name__)

SSH_PORT = 22


@dataclass(frozen=True)
class ContainerNetwork:
    route: Route
    ssh: PortMapping


def _require_network_permission(actor: User | None, container: Container) -> None:
    """Owners and staff change a container's routes and ports (None: the system itself)."""
    from auth.selectors import require_container_permission

    require_container_permission(actor, container, "manage_network")


def _audit(
    actor: User | None,
    action: str,
    obj: Route | PortMapping,
    summary: str,
    changes: dict[str, Any] | None = None,
) -> None:
    from auth.audit import audit_record

    audit_record(actor=actor, action=action, obj=obj, summary=summary, changes=changes)


def _lock_site(site_id: int) -> Site:
    # Re-entrant inside container_create's transaction, which already holds this lock.
    return Site.objects.select_for_update().get(pk=site_id)


def lock_changeable_container(container: Container) -> None:
    """Lock the container's row and refuse if it is deleting or deleted (InvalidState).

    Every route or port change takes this lock inside its transaction, after the site's
    (site, then container: the order `container_reassign_vmid` uses too); the delete
    path takes it before it marks the container deleting. So a change either commits
    before the delete, and its rows are released with the container, or sees the new
    state and is refused: no row outlives its container.
    """
    from containers.models import Container, ContainerStatus

    status = (
        Container.objects.select_for_update()
        .filter(pk=container.pk)
        .values_list("status", flat=True)
        .first()
    )
    if status is None or status in (ContainerStatus.DELETING, ContainerStatus.DELETED):
        raise InvalidState(
            f"cannot change the routes or ports of {container.hostname} while it is "
            f"{status or ContainerStatus.DELETED}",
            code="invalid_state",
        )


def _check_quota(container: Container, kind: str) -> None:
    """The owner's caps on routes or ports (QuotaExceeded), under the container's lock."""
    from auth.quotas import check_publish

    check_publish(container.owner, container=container, kind=kind)


def _listen_port(address: str) -> int | None:
    _, _, port = address.rpartition(":")
    return int(port) if port.isdigit() else None


def gateway_own_ports() -> set[int]:
    """Ports the gateway itself listens on; never handed out to a container."""
    listens = [
        *settings.GATEWAY_HTTP_LISTEN,
        *settings.GATEWAY_HTTPS_LISTEN,
        settings.GATEWAY_STATUS_LISTEN,
    ]
    ports = {p for p in (_listen_port(a) for a in listens) if p}
    ports.add(int(settings.GATEWAY_DNS_PORT))
    return ports


def _clean(obj: Route | PortMapping) -> None:
    # Field validation only: the site and container were just read under the site lock,
    # and callers check names and ports (the constraints back them up).
    try:
        obj.full_clean(
            exclude=["site", "container"], validate_unique=False, validate_constraints=False
        )
    except ValidationError as exc:
        raise ValidationFailed("; ".join(exc.messages), code="invalid") from exc


def _choose_external_port(site: Site, protocol: str, *, ssh: bool) -> int:
    low, high = (
        (site.ssh_port_min, site.ssh_port_max)
        if ssh
        else (site.service_port_min, site.service_port_max)
    )
    used = (
        PortMapping.objects.filter(
            site=site, protocol=protocol, external_port__gte=low, external_port__lte=high
        )
        .order_by()
        .values_list("external_port", flat=True)
    )
    try:
        return choose_port(low, high, used=used, blocked=gateway_own_ports())
    except ResourceExhausted as exc:
        kind = "SSH" if ssh else "service"
        raise ResourceExhausted(
            f"no free {protocol.upper()} {kind} port left on {site.name} ({low}-{high}); "
            "an operator can widen the site's port range",
            code="ports_exhausted",
        ) from exc


def _require_free_subdomain(site: Site, subdomain: str, *, exclude_pk: int | None = None) -> None:
    taken = Route.objects.filter(site=site, subdomain=subdomain)
    if exclude_pk:
        taken = taken.exclude(pk=exclude_pk)
    if taken.exists():
        raise Conflict(
            f"the name '{subdomain}' is already used on {site.name}",
            code="subdomain_taken",
            field="subdomain",
        )


def _save(obj: Route | PortMapping) -> None:
    # No savepoint: a conflict aborts the caller's whole transaction anyway.
    try:
        with transaction.atomic(savepoint=False):
            obj.save()
    except IntegrityError as exc:
        # The site lock makes this unreachable; never let it reach a user raw.
        raise Conflict(
            "another request took the same name or port; try again", code="allocation_conflict"
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
    _require_free_subdomain(site, container.hostname)
    route = Route(
        site=site,
        container=container,
        name="",
        subdomain=container.hostname,
        backend_port=http_port,
        protocol=http_protocol,
        access=access,
    )
    _clean(route)
    _save(route)
    ssh = PortMapping(
        site=site,
        container=container,
        name="ssh",
        protocol=PortProtocol.TCP,
        container_port=ssh_port,
        external_port=_choose_external_port(site, PortProtocol.TCP, ssh=True),
    )
    _clean(ssh)
    _save(ssh)
    # Published as soon as the create commits, so the DHCP reservation is in place
    # before Proxmox boots the container.
    request_apply(site, reason=f"create {container.hostname}")
    return ContainerNetwork(route=route, ssh=ssh)


def container_network_release(*, container: Container) -> tuple[int, int]:
    """Drop a deleted container's routes and port mappings: names and ports are free again."""
    with transaction.atomic():
        routes, _ = Route.objects.filter(container=container).delete()
        mappings, _ = PortMapping.objects.filter(container=container).delete()
        request_apply(container.site_id, reason=f"release {container.hostname}")
    return routes, mappings


# -- edited later ------------------------------------------------------------------------------------
def route_add(
    *,
    container: Container,
    name: str,
    backend_port: int,
    protocol: str = RouteProtocol.HTTP,
    access: str = RouteAccess.USERS,
    actor: User | None = None,
) -> Route:
    """Another HTTP service of a container, at <name>-<hostname>.<domain>."""
    _require_network_permission(actor, container)
    subdomain = f"{name}-{container.hostname}"
    try:
        validate_hostname(subdomain)
    except ValidationError as exc:
        raise ValidationFailed(
            f"service name: {exc.messages[0]} ('{subdomain}')",
            code="invalid_service_name",
            field="name",
        ) from exc
    with transaction.atomic():
        site = _lock_site(container.site_id)
        lock_changeable_container(container)
        _check_quota(container, "routes")
        if Route.objects.filter(container=container, name=name).exists():
            raise Conflict(
                f"{container.hostname} already has a service '{name}'",
                code="service_exists",
                field="name",
            )
        _require_free_subdomain(site, subdomain)
        route = Route(
            site=site,
            container=container,
            name=name,
            subdomain=subdomain,
            backend_port=backend_port,
            protocol=protocol,
            access=access,
        )
        _clean(route)
        _save(route)
        request_apply(site, reason=f"add route {subdomain}")
        _audit(actor, "route.add", route, f"{subdomain} -> port {backend_port} ({access})")
    return route


def route_update(
    *,
    route: Route,
    backend_port: int | None = None,
    protocol: str | None = None,
    access: str | None = None,
    enabled: bool | None = None,
    actor: User | None = None,
) -> Route:
    _require_network_permission(actor, route.container)
    before = {
        "backend_port": route.backend_port,
        "protocol": route.protocol,
        "access": route.access,
        "enabled": route.enabled,
    }
    with transaction.atomic():
        lock_changeable_container(route.container)
        if backend_port is not None:
            route.backend_port = backend_port
        if protocol is not None:
            route.protocol = protocol
        if access is not None:
            route.access = access
        if enabled is not None:
            route.enabled = enabled
        _clean(route)
        route.save(update_fields=["backend_port", "protocol", "access", "enabled", "updated_at"])
        request_apply(route.site_id, reason=f"edit route {route.subdomain}")
        changes = {k: [v, getattr(route, k)] for k, v in before.items() if getattr(route, k) != v}
        _audit(actor, "route.update", route, f"edit {route.subdomain}", changes)
    return route


def route_delete(*, route: Route, actor: User | None = None) -> None:
    _require_network_permission(actor, route.container)
    if not route.name:
        raise ValidationFailed(
            "the default route goes with its container; disable it instead",
            code="default_route",
            field="route",
        )
    with transaction.atomic():
        lock_changeable_container(route.container)
        _audit(actor, "route.delete", route, f"delete {route.subdomain}")
        route.delete()
        request_apply(route.site_id, reason=f"delete route {route.subdomain}")


def port_mapping_add(
    *,
    container: Container,
    container_port: int,
    protocol: str = PortProtocol.TCP,
    name: str,
    actor: User | None = None,
) -> PortMapping:
    """Publish one more port of a container on the gateway (from the site's service range)."""
    _require_network_permission(actor, container)
    with transaction.atomic():
        site = _lock_site(container.site_id)
        lock_changeable_container(container)
        _check_quota(container, "ports")
        if PortMapping.objects.filter(
            container=container, protocol=protocol, container_port=container_port
        ).exists():
            raise Conflict(
                f"{protocol.upper()} port {container_port} of {container.hostname} "
                "is already published",
                code="port_published",
                field="container_port",
            )
        mapping = PortMapping(
            site=site,
            container=container,
            name=name,
            protocol=protocol,
            container_port=container_port,
            external_port=_choose_external_port(site, protocol, ssh=False),
        )
        _clean(mapping)
        _save(mapping)
        request_apply(site, reason=f"publish {protocol}/{mapping.external_port}")
        _audit(
            actor, "port.add", mapping, f"{protocol}/{mapping.external_port} -> {container_port}"
        )
    return mapping


def port_mapping_delete(*, mapping: PortMapping, actor: User | None = None) -> None:
    _require_network_permission(actor, mapping.container)
    if mapping.name == "ssh" and mapping.container_port == 22:
        raise ValidationFailed(
            "the SSH port goes with its container", code="default_port", field="mapping"
        )
    with transaction.atomic():
        lock_changeable_container(mapping.container)
        _audit(
            actor, "port.delete", mapping, f"unpublish {mapping.protocol}/{mapping.external_port}"
        )
        mapping.delete()
        request_apply(
            mapping.site_id, reason=f"unpublish {mapping.protocol}/{mapping.external_port}"
        )


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
        if not state.update(requested=F("requested") + 1):
            GatewayState.objects.get_or_create(site_id=site_id)
            state.update(requested=F("requested") + 1)
        generation = int(state.values_list("requested", flat=True).get())
    log.debug("site %s: gateway generation %s (%s)", site_id, generation, reason)
    transaction.on_commit(lambda: enqueue_apply(site_id, slug=slug), robust=True)
    return generation


def enqueue_apply(site_id: int, *, slug: str | None = None) -> None:
    from portal.celery import gateway_queue

    from .tasks import apply_gateway

    if slug is None:
        slug = Site.objects.values_list("slug", flat=True).get(pk=site_id)
    apply_gateway.apply_async(args=(site_id,), queue=gateway_queue(slug))


def node_refresh_capacity(*, node: Node, actor: User | None) -> str:
    """Test the node's API connection and store its capacity; returns the Proxmox version.

    Raises the Proxmox client's PortalError (never containing the token secret)."""
    from auth.audit import audit_record
    from containers.proxmox import ProxmoxClient

    client = ProxmoxClient.for_node(node)
    version = str(client.version().get("version", "unknown"))
    status = client.node_status(node.name)
    memory = status.get("memory") or {}
    rootfs = status.get("rootfs") or {}
    cpuinfo = status.get("cpuinfo") or {}
    fields = {
        "max_cpu": cpuinfo.get("cpus"),
        "max_memory": memory.get("total"),
        "used_memory": memory.get("used"),
        "max_disk": rootfs.get("total"),
        "used_disk": rootfs.get("used"),
        "cpu_load": status.get("cpu"),
        "capacity_updated_at": timezone.now(),
    }
    Node.objects.filter(pk=node.pk).update(**fields, updated_at=fields["capacity_updated_at"])
    for key, value in fields.items():
        setattr(node, key, value)
    audit_record(
        actor=actor,
        action="node.refresh_capacity",
        obj=node,
        summary=f"read the capacity of {node.name} (Proxmox {version})",
        changes={k: v for k, v in fields.items() if k != "capacity_updated_at"},
    )
    return version
