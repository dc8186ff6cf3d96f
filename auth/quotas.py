"""Quotas: what a user may have, what they use, and the checks in create, resize and publish.

A user's limit for each quantity is the most generous value among the
default policy, the policies of their groups and their active quota overrides; a
row that leaves a limit empty has no say in it (and when nobody has a say, there
is no limit). Staff (with QUOTA_EXEMPT_STAFF) and superusers are not limited.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Q
from django.utils import timezone

from portal.errors import QuotaExceeded

from .models import QUOTA_FIELDS, QUOTA_LIMITS, GroupPolicy, QuotaOverride

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from containers.models import Container

# Which usage figure each limit bounds, and whether it is per container.
_MEASURE: dict[str, tuple[str, bool]] = {
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
_NAMES = {f: (name, unit) for f, name, unit in QUOTA_LIMITS}


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


@dataclass(frozen=True)
class Request:
    """What one container asks for (a new one, or the new size of one being resized)."""

    cores: int
    memory_mib: int
    swap_mib: int
    disk_gib: int


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


def usage_for(user: User) -> tuple[Usage, dict[int, Request]]:
    """What the user's live containers hold (a resize in progress counts at its larger size)."""
    from containers.models import ACTIVE_JOB_STATUSES, LIVE, Container, Job, JobKind

    sizes: dict[int, Request] = {
        pk: Request(cores, mem, swap, disk)
        for pk, cores, mem, swap, disk in Container.objects.filter(LIVE, owner=user).values_list(
            "pk", "cores", "memory_mib", "swap_mib", "disk_gib"
        )
    }
    pending = Job.objects.filter(
        container_id__in=list(sizes), kind=JobKind.RESIZE, status__in=ACTIVE_JOB_STATUSES
    ).values_list("container_id", "params")
    for pk, params in pending:
        cur = sizes[pk]
        sizes[pk] = Request(
            max(cur.cores, int(params.get("cores", 0))),
            max(cur.memory_mib, int(params.get("memory_mib", 0))),
            max(cur.swap_mib, int(params.get("swap_mib", 0))),
            max(cur.disk_gib, int(params.get("disk_gib", 0))),
        )
    usage = Usage(containers=len(sizes), **_published_counts(user))
    for size in sizes.values():
        usage.cores += size.cores
        usage.memory_mib += size.memory_mib
        usage.swap_mib += size.swap_mib
        usage.disk_gib += size.disk_gib
    return usage, sizes


EXEMPT = "not limited (staff)"


def quota_status(user: User) -> QuotaStatus:
    usage, _ = usage_for(user)
    if is_exempt(user):
        # One statement: no limit applies, so none is shown (nor what would be left of it).
        limits = {f: Limit(None, EXEMPT) for f in QUOTA_FIELDS}
        return QuotaStatus(
            exempt=True, limits=limits, usage=usage, remaining=dict.fromkeys(_MEASURE)
        )
    limits = effective_limits(user)
    remaining: dict[str, int | None] = {}
    for f, (measure, per_container) in _MEASURE.items():
        value = limits[f].value
        if per_container:
            remaining[f] = value
        else:
            remaining[f] = None if value is None else max(0, value - getattr(usage, measure))
    return QuotaStatus(exempt=False, limits=limits, usage=usage, remaining=remaining)


def _lock_user(user: User) -> None:
    """Serialise quota checks of one user (two creates at once cannot both fit)."""
    get_user_model().objects.select_for_update().filter(pk=user.pk).values_list("pk").first()


def _exceeded(f: str, message: str, **extra: Any) -> QuotaExceeded:
    return QuotaExceeded(message, code="quota_exceeded", limit=f, field=_MEASURE[f][0], **extra)


def check(user: User, *, new: Request, current: Container | None = None, lock: bool = True) -> None:
    """Raise QuotaExceeded if `new` (a new container, or `current`'s new size) does not fit.

    Call inside the transaction that makes the change: it takes the user's row lock.
    """
    if is_exempt(user):
        return
    limits = effective_limits(user)
    if all(limit.value is None for limit in limits.values()):
        return  # no policy limits this user: nothing to count
    if lock:
        _lock_user(user)
    usage, sizes = usage_for(user)
    old = sizes.get(current.pk) if current is not None else None
    delta = {
        "containers": 0 if current is not None else 1,
        "cores": new.cores - (old.cores if old else 0),
        "memory_mib": new.memory_mib - (old.memory_mib if old else 0),
        "swap_mib": new.swap_mib - (old.swap_mib if old else 0),
        "disk_gib": new.disk_gib - (old.disk_gib if old else 0),
    }
    for f in QUOTA_FIELDS:
        limit = limits[f]
        measure, per_container = _MEASURE[f]
        if limit.value is None or measure in PUBLISHED:
            continue
        name, unit = _NAMES[f]
        if per_container:
            value = getattr(new, measure)
            grew = old is None or value > getattr(old, measure)
            if grew and value > limit.value:
                raise _exceeded(
                    f,
                    f"quota exceeded: {name} {value}{unit} for one container > "
                    f"{limit.value} allowed by {limit.source}",
                    requested=value,
                    allowed=limit.value,
                    source=limit.source,
                )
            continue
        more = delta[measure]
        in_use = getattr(usage, measure)
        if more > 0 and in_use + more > limit.value:
            raise _exceeded(
                f,
                f"quota exceeded: {name} {in_use}{unit} in use + {more} requested > "
                f"{limit.value} allowed by {limit.source}",
                in_use=in_use,
                requested=more,
                allowed=limit.value,
                source=limit.source,
            )


# -- routes and published ports -----------------------------------------------------------------
# A container's own name (its default route) and its SSH port come with it (and are bounded
# by max_containers); the caps count what is published besides them.
def _published(kind: str) -> tuple[Any, Q]:
    from networking.models import PortMapping, PortProtocol, Route

    if kind == "routes":
        return Route, ~Q(name="")
    return PortMapping, ~Q(name="ssh", container_port=22, protocol=PortProtocol.TCP)


def _published_counts(user: User, kinds: tuple[str, ...] = PUBLISHED) -> dict[str, int]:
    from containers.models import ContainerStatus

    out = {}
    for kind in kinds:
        model, extra = _published(kind)
        live = ~Q(container__status=ContainerStatus.DELETED)
        out[kind] = model.objects.filter(extra, live, container__owner=user).count()
    return out


def check_publish(user: User, *, container: Container, kind: str) -> None:
    """Raise QuotaExceeded if one more of `kind` ("routes" or "ports") of `container` does
    not fit the caps of its owner `user`, per container and in total.

    Call inside the transaction that adds it, with the container's row locked: it takes the
    owner's row lock, so concurrent adds to any of the owner's containers are counted one
    after the other.
    """
    if is_exempt(user):
        return
    each_f, total_f = f"max_container_{kind}", f"max_{kind}"
    limits = effective_limits(user)
    each, total = limits[each_f], limits[total_f]
    if each.value is None and total.value is None:
        return
    _lock_user(user)
    model, extra = _published(kind)
    name = _NAMES[total_f][0]
    if each.value is not None:
        count = model.objects.filter(extra, container=container).count()
        if count + 1 > each.value:
            has = (
                f"has {count} route{'s' if count != 1 else ''} besides its own name"
                if kind == "routes"
                else f"publishes {count} port{'s' if count != 1 else ''}"
            )
            raise _exceeded(
                each_f,
                f"quota exceeded: {container.hostname} already {has}; "
                f"{each.value} allowed per container by {each.source}",
                in_use=count,
                requested=1,
                allowed=each.value,
                source=each.source,
            )
    if total.value is not None:
        in_use = _published_counts(user, (kind,))[kind]
        if in_use + 1 > total.value:
            raise _exceeded(
                total_f,
                f"quota exceeded: {name} {in_use} in use + 1 requested > "
                f"{total.value} allowed by {total.source}",
                in_use=in_use,
                requested=1,
                allowed=total.value,
                source=total.source,
            )
