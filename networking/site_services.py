"""Writes to sites and nodes (the admin's forms call these, never Model.save), and
reading a node's capacity from Proxmox.

Each validates the whole row (full_clean), records one audit entry and, when a value the
gateway renders changed, requests a gateway apply in the same transaction. Secrets are
named in the audit entry, never their values.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from auth.audit import audit_record
from auth.selectors import require_staff
from containers.node_load import status_figures
from containers.proxmox import ProxmoxClient
from portal.errors import InvalidState, ValidationFailed

from .models import Node, Site
from .services import request_apply

if TYPE_CHECKING:
    from django.contrib.auth.models import User

# What an operator may set on each; the rest is written by the portal itself (capacity...).
SITE_FIELDS = frozenset(
    {
        "name",
        "slug",
        "domain",
        "internal_domain",
        "subnet",
        "gateway_ip",
        "reserved_ranges",
        "dhcp_range_start",
        "dhcp_range_end",
        "dns_forwarders",
        "bridge",
        "rootfs_storage",
        "ssh_port_min",
        "ssh_port_max",
        "service_port_min",
        "service_port_max",
        "public_port",
        "container_ttl_days",
    }
)
# What an operator sets on a node, in the order the admin's form shows it.
NODE_FIELDS = (
    "site",
    "name",
    "api_url",
    "ip",
    "token_id",
    "token_secret",
    "ca_bundle",
    "tls_fingerprint",
    "verify_tls",
    "slot",
    "state",
)
# Values that end up in the gateway's files (networking/render.py): a change needs an apply.
SITE_RENDERED = frozenset(
    {
        "name",
        "slug",
        "domain",
        "internal_domain",
        "subnet",
        "gateway_ip",
        "dhcp_range_start",
        "dhcp_range_end",
        "dns_forwarders",
    }
)
NODE_RENDERED = frozenset({"site", "name", "api_url", "ip"})
SECRET_FIELDS = frozenset({"token_secret"})


def _require_operator(actor: User | None, what: str) -> None:
    require_staff(actor, what)


def _assign(obj: Site | Node, values: Mapping[str, Any], allowed: Collection[str]) -> list[str]:
    """Set the allowed values on obj; the names of those that differ from before."""
    unknown = set(values) - set(allowed)
    if unknown:
        raise ValidationFailed(
            f"cannot set {', '.join(sorted(unknown))} here", field=sorted(unknown)[0]
        )
    changed = []
    for name, value in values.items():
        # A new node has no site yet: reading it raises (an AttributeError), hence the default.
        if obj._state.adding or getattr(obj, name, None) != value:
            setattr(obj, name, value)
            changed.append(name)
    return changed


def _validate(obj: Site | Node) -> None:
    try:
        obj.full_clean()
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        raise ValidationFailed(f"{field}: {' '.join(messages)}", field=field) from exc


def _shown(obj: Site | Node, changed: list[str]) -> dict[str, Any]:
    return {k: ("(set)" if k in SECRET_FIELDS else str(getattr(obj, k))) for k in changed}


def _audit(
    actor: User | None, action: str, obj: Site | Node, summary: str, changed: list[str]
) -> None:
    audit_record(actor=actor, action=action, obj=obj, summary=summary, changes=_shown(obj, changed))


def site_create(*, actor: User | None, values: Mapping[str, Any]) -> Site:
    _require_operator(actor, "add a site")
    site = Site()
    with transaction.atomic():
        changed = _assign(site, values, SITE_FIELDS)
        _validate(site)
        site.save()
        _audit(actor, "site.create", site, f"added site {site.slug}", changed)
        request_apply(site, reason=f"site {site.slug} added")
    return site


def site_update(*, site: Site, actor: User | None, values: Mapping[str, Any]) -> list[str]:
    """Change a site; the names of the fields that changed (an apply is asked if rendered)."""
    _require_operator(actor, "change a site")
    with transaction.atomic():
        locked = Site.objects.select_for_update().get(pk=site.pk)
        changed = _assign(locked, values, SITE_FIELDS)
        if not changed:
            return []
        _validate(locked)
        locked.save(update_fields=changed)
        _audit(
            actor,
            "site.update",
            locked,
            f"changed {', '.join(changed)} of site {locked.slug}",
            changed,
        )
        if SITE_RENDERED & set(changed):
            request_apply(locked, reason=f"site {locked.slug}: {', '.join(changed)} changed")
    for name in changed:
        setattr(site, name, getattr(locked, name))
    return changed


def node_create(*, actor: User | None, values: Mapping[str, Any]) -> Node:
    _require_operator(actor, "add a node")
    node = Node()
    with transaction.atomic():
        changed = _assign(node, values, NODE_FIELDS)
        _validate(node)
        Site.objects.select_for_update().get(pk=node.site_id)  # slots and names per site
        node.save()
        _audit(actor, "node.create", node, f"added node {node.name} to {node.site}", changed)
        request_apply(node.site_id, reason=f"node {node.name} added")
    return node


def node_update(*, node: Node, actor: User | None, values: Mapping[str, Any]) -> list[str]:
    """Change a node; the names of the fields that changed (an apply is asked if rendered).

    A node that holds containers stays in its site: moving it would strand them."""
    _require_operator(actor, "change a node")
    with transaction.atomic():
        locked = Node.objects.select_for_update().get(pk=node.pk)
        old_site = locked.site_id
        changed = _assign(locked, values, NODE_FIELDS)
        if not changed:
            return []
        if "site" in changed and locked.containers.exists():
            raise InvalidState(
                f"{locked.name} holds containers: it cannot move to another site",
            )
        _validate(locked)
        fields = [*changed, "updated_at"]
        locked.save(update_fields=fields)
        _audit(
            actor,
            "node.update",
            locked,
            f"changed {', '.join(changed)} of node {locked.name}",
            changed,
        )
        if NODE_RENDERED & set(changed):
            request_apply(
                locked.site_id, reason=f"node {locked.name}: {', '.join(changed)} changed"
            )
            if locked.site_id != old_site:
                request_apply(old_site, reason=f"node {locked.name} left")
    for name in changed:
        setattr(node, name, getattr(locked, name))
    return changed


def node_refresh_capacity(*, node: Node, actor: User | None) -> str:
    """Test the node's API connection and store its capacity; returns the Proxmox version.

    Raises the Proxmox client's PortalError (never containing the token secret)."""
    client = ProxmoxClient.for_node(node)
    version = str(client.version().get("version", "unknown"))
    # The figures the beat probe also keeps (containers/node_load.py), read now.
    fields: dict[str, Any] = {
        **status_figures(client.node_status(node.name)),
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
