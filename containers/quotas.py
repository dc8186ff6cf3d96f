"""What a user's containers use of their quota, and the checks create, resize and publish make.

The limits themselves are auth/quotas.py (identity: policies, overrides, exemption);
this module counts what the user holds, which is containers, routes and ports.
`excess` is the one quota-fit computation: `check` refuses with its first finding,
and approving a resource request raises the limits it names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.db.models import Q

from auth.models import QUOTA_FIELDS
from auth.quotas import (
    EXEMPT,
    LIMIT_NAMES,
    MEASURES,
    PUBLISHED,
    Limit,
    QuotaStatus,
    Usage,
    effective_limits,
    is_exempt,
)
from networking.models import PortMapping, PortProtocol, Route
from portal.errors import QuotaExceeded

from .models import ACTIVE_JOB_STATUSES, LIVE, Container, ContainerStatus, Job, JobKind
from .resources import Resources

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def usage_for(user: User) -> tuple[Usage, dict[int, Resources]]:
    """What the user's live containers hold (a resize in progress counts at its larger size)."""
    sizes: dict[int, Resources] = {
        pk: Resources(cores, mem, swap, disk)
        for pk, cores, mem, swap, disk in Container.objects.filter(LIVE, owner=user).values_list(
            "pk", "cores", "memory_mib", "swap_mib", "disk_gib"
        )
    }
    pending = Job.objects.filter(
        container_id__in=list(sizes), kind=JobKind.RESIZE, status__in=ACTIVE_JOB_STATUSES
    ).values_list("container_id", "params")
    for pk, params in pending:
        cur = sizes[pk]
        sizes[pk] = Resources(
            *(max(getattr(cur, f), int(params.get(f, 0))) for f in Resources.FIELDS)
        )
    usage = Usage(containers=len(sizes), **_published_counts(user))
    for size in sizes.values():
        usage.cores += size.cores
        usage.memory_mib += size.memory_mib
        usage.swap_mib += size.swap_mib
        usage.disk_gib += size.disk_gib
    return usage, sizes


def quota_status(user: User) -> QuotaStatus:
    usage, _ = usage_for(user)
    if is_exempt(user):
        # One statement: no limit applies, so none is shown (nor what would be left of it).
        limits = {f: Limit(None, EXEMPT) for f in QUOTA_FIELDS}
        return QuotaStatus(
            exempt=True, limits=limits, usage=usage, remaining=dict.fromkeys(MEASURES)
        )
    limits = effective_limits(user)
    remaining: dict[str, int | None] = {}
    for f, (measure, per_container) in MEASURES.items():
        value = limits[f].value
        if per_container:
            remaining[f] = value
        else:
            remaining[f] = None if value is None else max(0, value - getattr(usage, measure))
    return QuotaStatus(exempt=False, limits=limits, usage=usage, remaining=remaining)


def _lock_user(user: User) -> None:
    """Serialise quota checks of one user (two creates at once cannot both fit)."""
    get_user_model().objects.select_for_update().filter(pk=user.pk).values_list("pk").first()


@dataclass(frozen=True)
class Excess:
    """One limit a new size would pass: `needed` is what the limit would have to be."""

    limit: str  # the quota field, e.g. "max_cores"
    allowed: int
    source: str
    needed: int
    message: str
    extra: dict[str, Any]

    def error(self) -> QuotaExceeded:
        return _exceeded(self.limit, self.message, **self.extra)


def excess(
    user: User, *, new: Resources, current: Container | None = None, lock: bool = False
) -> list[Excess]:
    """Every limit that `new` (a new container, or `current`'s new size) would pass.

    Only what grows counts: a limit lowered below what the user already has does not
    stop a change that does not add to it. With `lock`, the user's row is locked before
    anything is counted (see `check`).
    """
    if is_exempt(user):
        return []
    limits = effective_limits(user)
    if all(limit.value is None for limit in limits.values()):
        return []  # no policy limits this user: nothing to count
    if lock:
        _lock_user(user)
    usage, sizes = usage_for(user)
    old = sizes.get(current.pk) if current is not None else None
    delta = {
        "containers": 0 if current is not None else 1,
        **{f: getattr(new, f) - (getattr(old, f) if old else 0) for f in Resources.FIELDS},
    }
    found = []
    for f in QUOTA_FIELDS:
        limit = limits[f]
        measure, per_container = MEASURES[f]
        if limit.value is None or measure in PUBLISHED:
            continue
        name, unit = LIMIT_NAMES[f]
        if per_container:
            value = getattr(new, measure)
            grew = old is None or value > getattr(old, measure)
            if grew and value > limit.value:
                found.append(
                    Excess(
                        f,
                        limit.value,
                        limit.source,
                        needed=value,
                        message=f"quota exceeded: {name} {value}{unit} for one container > "
                        f"{limit.value} allowed by {limit.source}",
                        extra={"requested": value, "allowed": limit.value, "source": limit.source},
                    )
                )
            continue
        more = delta[measure]
        in_use = getattr(usage, measure)
        if more > 0 and in_use + more > limit.value:
            found.append(
                Excess(
                    f,
                    limit.value,
                    limit.source,
                    needed=in_use + more,
                    message=f"quota exceeded: {name} {in_use}{unit} in use + {more} requested > "
                    f"{limit.value} allowed by {limit.source}",
                    extra={
                        "in_use": in_use,
                        "requested": more,
                        "allowed": limit.value,
                        "source": limit.source,
                    },
                )
            )
    return found


def check(
    user: User, *, new: Resources, current: Container | None = None, lock: bool = True
) -> None:
    """Raise QuotaExceeded if `new` (a new container, or `current`'s new size) does not fit.

    Call inside the transaction that makes the change: it takes the user's row lock.
    """
    found = excess(user, new=new, current=current, lock=lock)
    if found:
        raise found[0].error()


# -- routes and published ports -----------------------------------------------------------------
# A container's own name (its default route) and its SSH port come with it (and are bounded
# by max_containers); the caps count what is published besides them.
def _published(kind: str) -> tuple[Any, Q]:
    if kind == "routes":
        return Route, ~Q(name="")
    return PortMapping, ~Q(name="ssh", container_port=22, protocol=PortProtocol.TCP)


def _published_counts(user: User, kinds: tuple[str, ...] = PUBLISHED) -> dict[str, int]:
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
    name = LIMIT_NAMES[total_f][0]
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


def _exceeded(f: str, message: str, **extra: Any) -> QuotaExceeded:
    return QuotaExceeded(message, limit=f, field=MEASURES[f][0], **extra)
