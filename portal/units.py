"""Figures in the units people read: bytes in binary units, fractions, ratios and ages.

Pure functions of their arguments (the pages' template filters and the admin share them);
a missing figure is an en dash, never a zero.
"""

from __future__ import annotations

from datetime import datetime, timedelta

DASH = "\N{EN DASH}"
IEC = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def _scale(value: float) -> tuple[float, int]:
    """`value` bytes as (number, index in IEC) with the number under 1024."""
    n, unit = float(value), 0
    while abs(n) >= 1024 and unit < len(IEC) - 1:
        n, unit = n / 1024, unit + 1
    return n, unit


def iec_bytes(value: float | None) -> str:
    """Bytes in binary units, as Proxmox shows them (`412 MiB`, `1.50 GiB`)."""
    if value is None:
        return DASH
    n, unit = _scale(value)
    digits = 0 if unit == 0 or abs(n) >= 100 else 1 if abs(n) >= 10 else 2
    return f"{n:.{digits}f} {IEC[unit]}"


def used_of(used: float | None, total: float | None) -> str:
    """Used and total bytes in the total's unit, one decimal: `12.3 / 62.8 GiB`."""
    if total is None:
        return DASH
    n, unit = _scale(total)
    if unit == 0:
        return f"{DASH if used is None else int(used)} / {int(total)} B"
    part = DASH if used is None else f"{used / 1024**unit:.1f}"
    return f"{part} / {n:.1f} {IEC[unit]}"


def percent(fraction: float | None) -> str:
    """A fraction as a percentage (`0.123` -> `12.3 %`)."""
    if fraction is None:
        return DASH
    return f"{fraction * 100:.1f} %"


def ratio(value: float | None) -> str:
    """How many times over, with a multiplication sign: `1.75 times` (past 1: overcommitted)."""
    if value is None:
        return DASH
    return f"{value:.2f}\N{MULTIPLICATION SIGN}"


def loads(*values: float | None) -> str:
    """Load averages as the kernel prints them, two decimals each: `3.74 / 3.37 / 3.00`."""
    return " / ".join(DASH if v is None else f"{v:.2f}" for v in values)


def span(start: datetime, now: datetime) -> str:
    """The time from `start` to `now` in its largest whole unit: `12 s`, `4 min`, `3 h`, `2 d`."""
    seconds = max(0, int((now - start) / timedelta(seconds=1)))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def ago(moment: datetime | None, now: datetime) -> str:
    """How long before `now`: `12 s ago`, `4 min ago` (`never` for no moment)."""
    return "never" if moment is None else f"{span(moment, now)} ago"
