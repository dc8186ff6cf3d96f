"""A container's published services: its extra routes and port mappings.

Owners (and staff) add, edit and remove them; the default route and the SSH port come
and go with the container (networking/services.py). Each change takes the site's row
lock, then the container's, checks the owner's caps on routes and ports, and asks for
one gateway apply once it commits.

This is the gateway layer: it reads containers and checks their owners' quotas, so it
sits above `containers` (docs/architecture.md, "Layers").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import transaction

from auth.audit import audit_record
from auth.selectors import require_container_permission
from containers.models import Container, ContainerStatus
from containers.quotas import check_publish
from portal.errors import Conflict, ErrorCode, InvalidState, ValidationFailed

from .allocation import release_ports
from .models import PortMapping, PortProtocol, Route, RouteAccess, RouteProtocol
from .services import (
    choose_external_port,
    clean_row,
    lock_site,
    request_apply,
    require_free_subdomain,
    save_row,
)
from .validators import validate_hostname

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def _require_network_permission(actor: User | None, container: Container) -> None:
    """Owners and staff change a container's routes and ports (None: the system itself)."""
    require_container_permission(actor, container, "manage_network")


def _audit(
    actor: User | None,
    action: str,
    obj: Route | PortMapping,
    summary: str,
    changes: dict[str, Any] | None = None,
) -> None:
    audit_record(actor=actor, action=action, obj=obj, summary=summary, changes=changes)


def lock_changeable_container(container: Container) -> None:
    """Lock the container's row and refuse if it is deleting or deleted (InvalidState).

    Every route or port change takes this lock inside its transaction, after the site's
    (site, then container: the order `container_reassign_vmid` uses too); the delete
    path takes it before it marks the container deleting. So a change either commits
    before the delete, and its rows are released with the container, or sees the new
    state and is refused: no row outlives its container.
    """
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
        )


def _check_quota(container: Container, kind: str) -> None:
    """The owner's caps on routes or ports (QuotaExceeded), under the container's lock."""
    check_publish(container.owner, container=container, kind=kind)


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
            code=ErrorCode.INVALID_SERVICE_NAME,
            field="name",
        ) from exc
    with transaction.atomic():
        site = lock_site(container.site_id)
        lock_changeable_container(container)
        _check_quota(container, "routes")
        if Route.objects.filter(container=container, name=name).exists():
            raise Conflict(
                f"{container.hostname} already has a service '{name}'",
                code=ErrorCode.SERVICE_EXISTS,
                field="name",
            )
        require_free_subdomain(site, subdomain)
        route = Route(
            site=site,
            container=container,
            name=name,
            subdomain=subdomain,
            backend_port=backend_port,
            protocol=protocol,
            access=access,
        )
        clean_row(route)
        save_row(route)
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
        clean_row(route)
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
            code=ErrorCode.DEFAULT_ROUTE,
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
        site = lock_site(container.site_id)
        lock_changeable_container(container)
        _check_quota(container, "ports")
        if PortMapping.objects.filter(
            container=container, protocol=protocol, container_port=container_port
        ).exists():
            raise Conflict(
                f"{protocol.upper()} port {container_port} of {container.hostname} "
                "is already published",
                code=ErrorCode.PORT_PUBLISHED,
                field="container_port",
            )
        mapping = PortMapping(
            site=site,
            container=container,
            name=name,
            protocol=protocol,
            container_port=container_port,
            external_port=choose_external_port(site, protocol, ssh=False),
        )
        clean_row(mapping)
        save_row(mapping)
        request_apply(site, reason=f"publish {protocol}/{mapping.external_port}")
        _audit(
            actor, "port.add", mapping, f"{protocol}/{mapping.external_port} -> {container_port}"
        )
    return mapping


def port_mapping_delete(*, mapping: PortMapping, actor: User | None = None) -> None:
    _require_network_permission(actor, mapping.container)
    if mapping.name == "ssh" and mapping.container_port == 22:
        raise ValidationFailed(
            "the SSH port goes with its container", code=ErrorCode.DEFAULT_PORT, field="mapping"
        )
    with transaction.atomic():
        lock_changeable_container(mapping.container)
        _audit(
            actor, "port.delete", mapping, f"unpublish {mapping.protocol}/{mapping.external_port}"
        )
        mapping.delete()
        release_ports(mapping.site_id, [(mapping.protocol, mapping.external_port)])
        request_apply(
            mapping.site_id, reason=f"unpublish {mapping.protocol}/{mapping.external_port}"
        )
