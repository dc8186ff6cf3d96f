from __future__ import annotations

# The largest id a BigAutoField holds: an id filter beyond it is a 400.
ID_MAX = 2**63 - 1


def parse_id(raw: str) -> int | None:
    """A database id (0-ID_MAX) from a query string, or None. Digits only, and few of
    them, so int() never sees a sign, a space or Python's 4300-digit limit."""
    if not (raw.isascii() and raw.isdigit() and len(raw) <= len(str(ID_MAX))):
        return None
    value = int(raw)
    return value if value <= ID_MAX else None
