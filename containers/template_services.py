"""Operator writes to templates (the admin's form calls this, never Model.save).

Templates are added by `templates_import` (from what a node's storage holds); after that
only their offer and limits change, validated with full_clean and audited. A template is disabled, never deleted:
containers keep pointing at it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import transaction

from auth.audit import audit_record
from auth.selectors import require_staff
from networking.models import NodeState
from portal.errors import InvalidState, ValidationFailed

from .models import Template

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from networking.models import Site

TEMPLATE_FIELDS = frozenset(
    {
        "display_name",
        "os_type",
        "default_cores",
        "default_memory_mib",
        "default_swap_mib",
        "default_disk_gib",
        "max_cores",
        "max_memory_mib",
        "max_swap_mib",
        "max_disk_gib",
        "enabled",
        "container_ttl_days",
        "wazuh_group",
    }
)


def template_update(
    *, template: Template, actor: User | None, values: Mapping[str, Any]
) -> list[str]:
    """Change what a template offers; the names of the fields that changed."""
    require_staff(actor, "change a template")
    unknown = set(values) - TEMPLATE_FIELDS
    if unknown:
        raise ValidationFailed(f"cannot set {', '.join(sorted(unknown))} here")
    with transaction.atomic():
        locked = Template.objects.select_for_update().get(pk=template.pk)
        changed = [k for k, v in values.items() if getattr(locked, k) != v]
        for name in changed:
            setattr(locked, name, values[name])
        if not changed:
            return []
        try:
            locked.full_clean()
        except ValidationError as exc:
            field, messages = next(iter(exc.message_dict.items()))
            raise ValidationFailed(f"{field}: {' '.join(messages)}", field=field) from exc
        locked.save(update_fields=changed)
        audit_record(
            actor=actor,
            action="template.update",
            obj=locked,
            summary=f"changed {', '.join(changed)} of template {locked.name}",
            changes={k: getattr(locked, k) for k in changed},
        )
    for name in changed:
        setattr(template, name, getattr(locked, name))
    return changed


# -- importing from a node ---------------------------------------------------------------------
_TEMPLATE_FILE = re.compile(r"^(?P<os>[a-z]+)-(?P<version>[0-9]+(?:\.[0-9]+)?)-(?P<flavour>[a-z]+)")


def template_name_for(volid: str) -> tuple[str, str]:
    """(name, display name) for a vztmpl volume id, e.g. ('debian-12', 'Debian 12 (standard)')."""
    filename = volid.rsplit("/", 1)[-1]
    m = _TEMPLATE_FILE.match(filename)
    if not m:
        base = re.sub(r"[^a-z0-9-]+", "-", filename.lower()).strip("-")[:32].strip("-")
        return base or "template", filename
    version = (
        m["version"] if m["os"] in ("ubuntu", "fedora", "alpine") else m["version"].split(".")[0]
    )
    name = f"{m['os']}-{version}".replace(".", "-")
    return name[:32], f"{m['os'].capitalize()} {version} ({m['flavour']})"


def templates_import(*, site: Site, storage: str = "local") -> list[Template]:
    """Add the vztmpl templates found on the site's first active node as portal templates."""
    from .proxmox import ProxmoxClient

    node = site.nodes.filter(state=NodeState.ACTIVE).order_by("slot").first()
    if node is None:
        raise InvalidState(f"{site.name} has no active node to read templates from")
    found = ProxmoxClient.for_node(node).templates(node.name, storage)
    imported = []
    for item in sorted(found, key=lambda i: str(i.get("volid"))):
        volid = str(item["volid"])
        name, display = template_name_for(volid)
        template, created = Template.objects.get_or_create(
            site=site,
            name=name,
            defaults={"display_name": display, "volid": volid, "os_type": name.split("-")[0]},
        )
        if created:
            imported.append(template)
    return imported
