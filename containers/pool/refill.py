"""The refill pass (Celery task `containers.refill_pools`, on its own queue `pool`).

For each site with a pool, in this order:
1. remove what must go: members left half-made (`broken`, or `creating` longer than a
   Proxmox task may take), members of a template whose volume changed or that was
   disabled (the recycle), and members above their pool's target;
2. make the missing members, one at a time, on nodes that are active and have room.

A node that is not active (maintenance, offline) is skipped: nothing on it is touched.
A node that stops answering during the pass is probed; its pool stops for this pass (and
the probe marks it offline, as containers.health does for jobs). Every member is made
with the create's own settings: its node's parity VMID, the site's storage and bridge,
unprivileged; and, as a member, stopped, `onboot=0`, named `pool-<vmid>`, tagged with
the managed tag and POOL_TAG, the portal's deploy key as its only SSH key, and no MAC
(Proxmox makes one; a claim sets the reserved one) and no address.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db.models import Q, Sum
from django.utils import timezone

from networking.models import Node, Site
from portal.errors import UpstreamError

from .. import health
from ..deploy_key import deploy_public_key
from ..models import LIVE, Container
from ..proxmox import ProxmoxClient, ProxmoxNotFound, ProxmoxUnavailable, VmidTaken
from ..services import forget_proxmox_vmids, proxmox_used_vmids
from ..tags import tag_set
from . import services
from .models import POOL_TAG, PoolMember, PoolMemberState, PoolTarget

log = logging.getLogger(__name__)

MIB = 1024 * 1024
# A VMID Proxmox says is taken is skipped; after this many in one pool, the pool waits.
MAX_TAKEN_PER_POOL = 10


@dataclass
class Pass:
    """One site's refill: what it made, removed and skipped (the task's result)."""

    site: Site
    foreign: set[int]
    made: list[int] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # node -> why
    down: set[int] = field(default_factory=set)  # node ids that failed during the pass

    def summary(self) -> str:
        skipped = "; ".join(f"{n}: {why}" for n, why in sorted(self.skipped.items()))
        return f"made {len(self.made)}, removed {len(self.removed)}" + (
            f"; skipped {skipped}" if skipped else ""
        )


def refill_all() -> dict[str, str]:
    """Every site that has a pool (or members left to remove)."""
    ids = set(PoolTarget.objects.filter(target__gt=0).values_list("site_id", flat=True))
    ids |= set(PoolMember.objects.values_list("site_id", flat=True))
    return {site.slug: refill_site(site).summary() for site in Site.objects.filter(pk__in=ids)}


def refill_site(site: Site) -> Pass:
    p = Pass(site=site, foreign=set(proxmox_used_vmids(site)))
    for member in _to_remove(site):
        _remove(p, member)
    for pool in PoolTarget.objects.filter(site=site, target__gt=0).select_related("node"):
        _fill(p, pool)
    if p.made or p.removed:
        forget_proxmox_vmids(site)  # the next create lists Proxmox's guests anew
        log.info("pool refill of %s: %s", site.slug, p.summary())
    return p


# -- what goes ----------------------------------------------------------------------------------
def _to_remove(site: Site) -> list[PoolMember]:
    stuck = timezone.now() - timedelta(seconds=settings.PROXMOX_TASK_TIMEOUT)
    members = list(
        PoolMember.objects.filter(site=site)
        .filter(
            Q(state=PoolMemberState.BROKEN)
            | Q(state=PoolMemberState.CREATING, created_at__lt=stuck)
        )
        .select_related("node")
    )
    members += services.stale_members(site)
    for pool in PoolTarget.objects.filter(site=site):
        ready = PoolMember.objects.filter(
            template_id=pool.template_id, node_id=pool.node_id, state=PoolMemberState.READY
        ).select_related("node")
        members += list(ready.order_by("-vmid")[: max(ready.count() - pool.target, 0)])
    return list({m.pk: m for m in members}.values())


def _remove(p: Pass, member: PoolMember) -> None:
    """Destroy a member's CT (only while it carries the pool tag), then its row."""
    node = member.node
    if not node.is_active or node.pk in p.down:
        return
    if member.state == PoolMemberState.READY and not services.member_take_for_removal(member):
        return  # a create claimed it meanwhile
    client = ProxmoxClient.for_node(node)
    try:
        try:
            config = client.container_config(node.name, member.vmid)
        except ProxmoxNotFound:
            services.member_gone(member=member)
            return
        if config.get("lock"):
            return  # a task of its own is still running: next pass
        if POOL_TAG not in tag_set(config.get("tags")):
            log.warning(
                "CT %s on %s is not a pool member; its row goes, it stays", member.vmid, node
            )
            services.member_gone(member=member)
            return
        if client.container_status(node.name, member.vmid).get("status") == "running":
            client.wait_task(client.stop(node.name, member.vmid))
        client.wait_task(client.delete_container(node.name, member.vmid, purge=True, force=True))
    except ProxmoxNotFound:
        pass
    except UpstreamError as exc:
        _failed(p, node, exc)
        services.member_broken(member=member, message=f"removing it failed: {exc.message}")
        return
    services.member_gone(member=member)
    p.removed.append(member.vmid)


# -- what is made -------------------------------------------------------------------------------
def committed_memory_mib(node: Node) -> int:
    """The memory promised on the node: its live containers' and its members'.

    A claimed member is left out: its VMID, and its CT, are a live container's now, whose
    own (perhaps larger) memory is already counted."""
    containers = Container.objects.filter(LIVE, node=node).aggregate(m=Sum("memory_mib"))["m"]
    members = (
        PoolMember.objects.filter(node=node)
        .exclude(state=PoolMemberState.CLAIMED)
        .aggregate(m=Sum("memory_mib"))["m"]
    )
    return (containers or 0) + (members or 0)


def no_room(node: Node, memory_mib: int) -> str:
    """Why the node cannot take another member ("" if it can): its disk is too full, or the
    memory of its live containers and members would pass the commitment allowed."""
    used = node.used_disk / node.max_disk if node.max_disk and node.used_disk is not None else 0
    if used > settings.POOL_NODE_MAX_DISK_USED:
        return f"its disk is {used:.0%} used"
    if node.max_memory:
        committed = (committed_memory_mib(node) + memory_mib) * MIB
        if committed > node.max_memory * settings.POOL_NODE_MAX_MEMORY_COMMIT:
            return f"its memory would be {committed / node.max_memory:.0%} committed"
    return ""


def _fill(p: Pass, pool: PoolTarget) -> None:
    node = Node.objects.get(pk=pool.node_id)
    taken = 0
    while True:
        if not node.is_active or node.pk in p.down:
            why = p.skipped.get(node.name) or f"{node.name} is {node.state}"
            p.skipped[node.name] = why
            services.pool_skipped(pool=pool, reason=why)
            return
        why = no_room(node, pool.template.default_memory_mib)
        if why:
            p.skipped[node.name] = why
            services.pool_skipped(pool=pool, reason=why)
            return
        member = services.member_reserve(pool=pool, foreign=frozenset(p.foreign))
        if member is None:
            services.pool_skipped(pool=pool, reason="")
            return
        outcome = _make(p, member)
        if outcome == "taken":
            taken += 1
            if taken >= MAX_TAKEN_PER_POOL:
                return
        elif outcome != "made":
            return


def _make(p: Pass, member: PoolMember) -> str:
    """Create and wait: "made", "taken" (Proxmox has that VMID: try the next) or "failed"."""
    site, node, template = p.site, member.node, member.template
    client = ProxmoxClient.for_node(node)
    started = time.monotonic()
    try:
        upid = client.create_container(
            node.name,
            vmid=member.vmid,
            ostemplate=member.volid,
            hostname=member.hostname,
            cores=member.cores,
            memory_mib=member.memory_mib,
            swap_mib=template.default_swap_mib,
            rootfs=f"{site.rootfs_storage}:{member.disk_gib}",
            net0=f"name=eth0,bridge={site.bridge},ip=dhcp,type=veth",
            tags=f"{settings.PROXMOX_MANAGED_TAG};{POOL_TAG}",
            description=f"Cluster Portal pool member ({template.name}), not yet claimed",
            ssh_public_keys=deploy_public_key(),
            start=False,
            onboot=False,  # a member never starts by itself, even after the node reboots
        )
        client.wait_task(upid)
    except VmidTaken:
        p.foreign.add(member.vmid)
        services.member_gone(member=member)
        return "taken"
    except UpstreamError as exc:
        _failed(p, node, exc)
        services.member_broken(member=member, message=f"making it failed: {exc.message}")
        return "failed"
    services.member_ready(member=member, seconds=time.monotonic() - started)
    p.made.append(member.vmid)
    return "made"


def _failed(p: Pass, node: Node, exc: UpstreamError) -> None:
    """A call to the node failed: its pools stop for this pass; if the node does not answer
    a probe either, it is marked offline (and every pass skips it until it is back)."""
    p.down.add(node.pk)
    p.skipped[node.name] = f"{node.name}: {exc.message}"[:300]
    log.warning("pool refill on %s stopped: %s", node.name, exc.message)
    if isinstance(exc, ProxmoxUnavailable) and health.is_node_down(exc):
        reason = health.probe(node)
        if reason:
            health.node_mark_offline(node=node, reason=reason)
