"""Template helpers shared by every page."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import dateformat, timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

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


_IEC = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


@register.filter
def iec_bytes(value: float | int | None) -> str:
    """Bytes in binary units, as Proxmox shows them (`412 MiB`, `1.50 GiB`)."""
    if value is None:
        return "\N{EN DASH}"
    n, unit = float(value), 0
    while abs(n) >= 1024 and unit < len(_IEC) - 1:
        n, unit = n / 1024, unit + 1
    digits = 0 if unit == 0 or abs(n) >= 100 else 1 if abs(n) >= 10 else 2
    return f"{n:.{digits}f} {_IEC[unit]}"


@register.filter
def percent(fraction: float | None) -> str:
    """A fraction as a percentage (`0.123` -> `12.3 %`)."""
    if fraction is None:
        return "\N{EN DASH}"
    return f"{fraction * 100:.1f} %"
