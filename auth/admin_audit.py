"""Audit admin changes: a ModelAdmin mixin that records one audit entry per object changed.

Use it for the models whose admin changes matter (sites, nodes, quotas, ...):
`class NodeAdmin(AuditedModelAdmin): ...`. Only field names are recorded, never values,
so secrets typed into a form stay out of the log.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from .audit import audit_record


def summarise(message: Any) -> str:
    """Django's admin change message (a list of dicts or JSON) in a few words."""
    if isinstance(message, str):
        try:
            message = json.loads(message) if message.startswith("[") else message
        except ValueError:
            return message[:500]
        if isinstance(message, str):
            return message[:500]
    parts: list[str] = []
    for item in message or []:
        for verb, detail in item.items():
            name = detail.get("name", "")
            obj = detail.get("object", "")
            fields = detail.get("fields", [])
            what = f"{name} {obj}".strip()
            text = f"{verb} {what}".strip()
            if fields:
                text += (" of " if what else " ") + ", ".join(str(f) for f in fields)
            parts.append(text)
    return "; ".join(parts)[:500] or "no field changed"


class AuditedModelAdmin(admin.ModelAdmin):
    def _record(self, request: HttpRequest, obj: Model, verb: str, message: Any = "") -> None:
        label = obj._meta.label_lower
        summary = summarise(message) if message else ""
        audit_record(
            actor=request.user,
            action=f"admin.{verb}",
            obj=obj,
            summary=f"{verb} {obj._meta.verbose_name} {obj}" + (f": {summary}" if summary else ""),
            changes={"model": label},
        )

    def log_addition(self, request: HttpRequest, obj: Model, message: Any) -> Any:
        self._record(request, obj, "add", message)
        return super().log_addition(request, obj, message)

    def log_change(self, request: HttpRequest, obj: Model, message: Any) -> Any:
        self._record(request, obj, "change", message)
        return super().log_change(request, obj, message)

    def log_deletions(self, request: HttpRequest, queryset: QuerySet[Any]) -> Any:
        for obj in queryset:
            self._record(request, obj, "delete")
        return super().log_deletions(request, queryset)
