"""Operator writes to templates (the admin's form calls this, never Model.save).

Templates are added by `templates_import` (containers.services); here only their offer and
limits change, validated with full_clean and audited. A template is disabled, never deleted:
containers keep pointing at it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import transaction

from auth.audit import audit_record
from auth.selectors import require_staff
from portal.errors import ValidationFailed

from .models import Template

if TYPE_CHECKING:
    from django.contrib.auth.models import User

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
