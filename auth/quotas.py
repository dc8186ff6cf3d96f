"""Quotas: what a user may have.

A user's limit for each quantity is the most generous value among the
default policy, the policies of their groups and their active quota overrides; a
row that leaves a limit empty has no say in it (and when nobody has a say, there
is no limit). Staff (with QUOTA_EXEMPT_STAFF) and superusers are not limited.

What a user uses, and the checks that create, resize and publish make against these
limits, count containers: they are containers/quotas.py, a layer up.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from .models import QUOTA_FIELDS, QUOTA_LIMITS, GroupPolicy, QuotaOverride

if TYPE_CHECKING:
    from django.contrib.auth.models import User

# Which usage figure each limit bounds, and whether it is per container.
MEASURES: dict[str, tuple[str, bool]] = {
    "max_containers": ("containers", False),
    "max_cores": ("cores", False),
    "max_memory_mib": ("memory_mib", False),
    "max_swap_mib": ("swap_mib", False),
    "max_disk_gib": ("disk_gib", False),
    "max_container_cores": ("cores", True),
    "max_container_memory_mib": ("memory_mib", True),
    "max_container_swap_mib": ("swap_mib", True),
    "max_container_disk_gib": ("disk_gib", True),
    "max_routes": ("routes", False),
    "max_ports": ("ports", False),
    "max_container_routes": ("routes", True),
    "max_container_ports": ("ports", True),
}
# Counted when a route or port is added (`check_publish`), not by create and resize.
PUBLISHED = ("routes", "ports")
LIMIT_NAMES = {f: (name, unit) for f, name, unit in QUOTA_LIMITS}


@dataclass(frozen=True)
class Limit:
    value: int | None  # None: no limit
    source: str  # e.g. "group students", "the default policy", "extra quota granted 2026-05-04"


@dataclass
class Usage:
    containers: int = 0
    cores: int = 0
    memory_mib: int = 0
    swap_mib: int = 0
    disk_gib: int = 0
    routes: int = 0  # besides each container's own name
    ports: int = 0  # besides each container's SSH port


@dataclass
class QuotaStatus:
    """Limits, usage and what is left, for the GUI and the API to show before submitting."""

    exempt: bool
    limits: dict[str, Limit]
    usage: Usage
    remaining: dict[str, int | None] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "exempt": self.exempt,
            "usage": asdict(self.usage),
            "limits": {
                f: {"value": lim.value, "source": lim.source} for f, lim in self.limits.items()
            },
            "remaining": dict(self.remaining),
        }


def _settings_defaults() -> dict[str, int | None]:
    return {
        f: getattr(settings, f"QUOTA_DEFAULT_{f.removeprefix('max_').upper()}")
        for f in QUOTA_FIELDS
    }


def sources_for(user: User) -> list[tuple[str, dict[str, int | None]]]:
    """(label, limits) of every row that applies to the user, the default first."""
    default: tuple[str, dict[str, int | None]] = ("the default policy", _settings_defaults())
    groups = []
    # The default row and the user's groups' rows in one read.
    rows = GroupPolicy.objects.filter(Q(group__isnull=True) | Q(group__user=user))
    for policy in rows.select_related("group").order_by("pk").distinct():
        values = {f: getattr(policy, f) for f in QUOTA_FIELDS}
        if policy.group_id is None:
            default = ("the default policy", values)
        else:
            groups.append((policy.label, values))
    out = [default, *groups]
    now = timezone.now()
    overrides = QuotaOverride.objects.filter(user=user).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=now)
    )
    for override in overrides.order_by("pk"):
        out.append((override.label, {f: getattr(override, f) for f in QUOTA_FIELDS}))
    return out


def is_exempt(user: User) -> bool:
    return bool(
        getattr(user, "is_superuser", False)
        or (settings.QUOTA_EXEMPT_STAFF and getattr(user, "is_staff", False))
    )


def effective_limits(user: User) -> dict[str, Limit]:
    """Limit by limit, the most generous value any applicable row gives."""
    limits: dict[str, Limit] = {}
    sources = sources_for(user)
    for f in QUOTA_FIELDS:
        best: Limit = Limit(None, "no policy")
        for label, values in sources:
            value = values.get(f)
            if value is None:
                continue
            if best.value is None or value > best.value:
                best = Limit(int(value), label)
        limits[f] = best
    return limits


EXEMPT = "not limited (staff)"
