"""What the admin and /metrics show of each pool: its target, size, oldest member, hit rate."""

from __future__ import annotations

from django.db.models import Count, F, Min, Q, QuerySet

from .models import PoolMemberState, PoolTarget


def pools_with_figures(queryset: QuerySet[PoolTarget] | None = None) -> QuerySet[PoolTarget]:
    """Pools annotated, in one query, with `size` (ready members), `building` (being made)
    and `oldest_ready_at` (when its oldest ready member became ready)."""
    qs = PoolTarget.objects.all() if queryset is None else queryset
    ready = Q(
        template__pool_members__node=F("node"),
        template__pool_members__state=PoolMemberState.READY,
    )
    building = Q(
        template__pool_members__node=F("node"),
        template__pool_members__state=PoolMemberState.CREATING,
    )
    return qs.select_related("site", "template", "node").annotate(
        size=Count("template__pool_members", filter=ready, distinct=True),
        building=Count("template__pool_members", filter=building, distinct=True),
        oldest_ready_at=Min("template__pool_members__ready_at", filter=ready),
    )


def hit_rate(pool: PoolTarget) -> float | None:
    """Claims that found a member over every create of its template on its node (None:
    none yet)."""
    total = pool.hits + pool.misses
    return pool.hits / total if total else None
