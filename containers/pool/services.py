"""The pool's writes: the target (the admin's one knob) and the member rows' life.

A member's VMID is reserved here under the site's row lock, the same lock the create
service takes to choose a container's VMID, so the two never choose the same number.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from auth.audit import audit_record
from networking.models import Node, Site
from portal.errors import ErrorCode, FieldErrors

from ..models import LIVE, Container, Template
from .models import MAX_POOL_TARGET, PoolMember, PoolMemberState, PoolTarget

if TYPE_CHECKING:
    from django.contrib.auth.models import User


# -- the target ------------------------------------------------------------------------------
def pool_target_set(
    *, template: Template, node: Node, target: int, actor: User | None
) -> PoolTarget:
    """Set how many stopped members `template` keeps on `node` (0 turns its pool off; the
    next refill removes the members above the target)."""
    errors = FieldErrors()
    if node.site_id != template.site_id:
        errors.add(
            f"{node.name} is not a node of {template.site}",
            code=ErrorCode.INVALID,
            field="node",
        )
    if not 0 <= target <= MAX_POOL_TARGET:
        errors.add(
            f"a pool holds 0 to {MAX_POOL_TARGET} containers",
            code=ErrorCode.INVALID,
            field="target",
        )
    errors.raise_if_any()
    with transaction.atomic():
        pool, _ = PoolTarget.objects.select_for_update().get_or_create(
            template=template, node=node, defaults={"site_id": template.site_id}
        )
        before = pool.target
        if before != target:
            PoolTarget.objects.filter(pk=pool.pk).update(target=target, updated_at=timezone.now())
            pool.target = target
            audit_record(
                actor=actor,
                action="pool.target",
                obj=pool,
                summary=f"pool of {template.name} on {node.name}: target {before} -> {target}",
                changes={"target": target, "was": before},
            )
    if before != target:
        from ..tasks import enqueue_refill

        transaction.on_commit(lambda: enqueue_refill(template.site_id))
    return pool


# -- members -------------------------------------------------------------------------------------
def pool_vmids(site: Site | int) -> set[int]:
    """The VMIDs the site's pool members hold (no container may take one)."""
    return set(PoolMember.objects.filter(site=site).values_list("vmid", flat=True))


def _next_vmid(node: Node, count: int, used: set[int]) -> int | None:
    """The smallest free VMID >= VMID_MIN whose slot is the node's (the parity rule)."""
    vmid = settings.VMID_MIN + (node.slot - settings.VMID_MIN) % count
    while vmid <= settings.VMID_MAX:
        if vmid not in used:
            return vmid
        vmid += count
    return None


def member_reserve(*, pool: PoolTarget, foreign: frozenset[int]) -> PoolMember | None:
    """Reserve the next member of `pool` (a VMID of the node's parity, the template's
    defaults) unless it is full; None when it is full or no VMID is left.

    Under the site's row lock: the pool's count and the VMIDs in use are read, and the row
    inserted, while no create and no other refill can choose."""
    with transaction.atomic():
        site = Site.objects.select_for_update().get(pk=pool.site_id)
        template = Template.objects.get(pk=pool.template_id)
        target = PoolTarget.objects.filter(pk=pool.pk).values_list("target", flat=True).first()
        held = PoolMember.objects.filter(
            template=template, node_id=pool.node_id, volid=template.volid
        ).exclude(state__in=[PoolMemberState.CLAIMED, PoolMemberState.BROKEN])
        if not target or held.count() >= target or not template.enabled:
            return None
        used = set(
            Container.objects.filter(LIVE, site=site).order_by().values_list("vmid", flat=True)
        )
        used |= pool_vmids(site) | foreign
        node = Node.objects.get(pk=pool.node_id)
        vmid = _next_vmid(node, site.nodes.count(), used)
        if vmid is None:
            return None
        return PoolMember.objects.create(
            site=site,
            template=template,
            node=node,
            vmid=vmid,
            volid=template.volid,
            cores=template.default_cores,
            memory_mib=template.default_memory_mib,
            disk_gib=template.default_disk_gib,
        )


def member_ready(*, member: PoolMember, seconds: float) -> None:
    now = timezone.now()
    PoolMember.objects.filter(pk=member.pk, state=PoolMemberState.CREATING).update(
        state=PoolMemberState.READY, ready_at=now, build_seconds=seconds, message=""
    )
    PoolTarget.objects.filter(template_id=member.template_id, node_id=member.node_id).update(
        last_build_seconds=seconds, refilled_at=now
    )


def member_broken(*, member: PoolMember, message: str) -> None:
    """A member that may be half-made on Proxmox: it keeps its VMID until a pass removes it."""
    PoolMember.objects.filter(pk=member.pk).update(
        state=PoolMemberState.BROKEN, message=message[:300]
    )


def member_take_for_removal(member: PoolMember) -> bool:
    """Take a ready member out of the claims' reach before destroying it (False: a create
    claimed it first; it is the create's now)."""
    return bool(
        PoolMember.objects.filter(pk=member.pk, state=PoolMemberState.READY).update(
            state=PoolMemberState.BROKEN, message="being removed"
        )
    )


def member_gone(*, member: PoolMember) -> None:
    """Its CT is no longer on Proxmox (or never was): the row and its VMID go."""
    PoolMember.objects.filter(pk=member.pk).delete()


def pool_skipped(*, pool: PoolTarget, reason: str) -> None:
    PoolTarget.objects.filter(pk=pool.pk).update(skipped_reason=reason[:300])


def stale_members(site: Site) -> list[PoolMember]:
    """Members to recycle: made from another volume than their template's now, or of a
    disabled template (a claim never takes them)."""
    return list(
        PoolMember.objects.filter(site=site, state=PoolMemberState.READY)
        .filter(~Q(volid=F("template__volid")) | Q(template__enabled=False))
        .select_related("template", "node")
    )
