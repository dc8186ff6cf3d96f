"""Template helpers shared by every page."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import dateformat, timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from portal import units

register = template.Library()


@register.filter
def when(value: datetime | None, fmt: str = "Y-m-d H:i") -> SafeString | str:
    """A moment in the portal's time zone, saying which one (`2026-12-04 21:54 UTC`), as a
    `<time>` element carrying the exact instant."""
    if not value:
        return ""
    local = timezone.localtime(value)
    return format_html(
        '<time datetime="{}">{} {}</time>',
        local.isoformat(timespec="seconds"),
        dateformat.format(local, fmt),
        local.tzname() or "",
    )


@register.filter
def ago(value: datetime | None) -> str:
    """How long before now, in its largest whole unit: `4 min ago` (`never` for none)."""
    return units.ago(value, timezone.now())


# Shared with the admin (portal/units.py).
iec_bytes = register.filter("iec_bytes", units.iec_bytes)
percent = register.filter("percent", units.percent)
