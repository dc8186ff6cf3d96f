"""The claim: a create takes a ready pool member instead of making a CT (docs/pool.md).

`containers.services.container_create` calls three functions here, inside its one
transaction:
- `member_take` before the site lock: a ready member of the template, on an active node
  whose slot its VMID maps to (the parity rule), not larger than the disk asked, is moved
  to `claimed` by a conditional update (`... WHERE state='ready'`), as jobs are claimed:
  two creates never take one member; the one that loses tries the next member, or none;
- `placement`: the new container takes the member's VMID and node instead of choosing;
- `claimed`: counts the hit (or the miss, on the pool of the node the create chose),
  gives the job the member's id (its plan is then the claim's, containers/jobs/claim.py),
  and asks for a refill once the transaction commits.
A create that fails in that transaction (a name taken, a quota) rolls the claim back with it.

After that the member row stays `claimed` (its VMID held) until the job ends:
`member_done` drops it once the container runs, `member_return` puts an untouched member
back (`ready`), `member_drop` forgets one whose CT was destroyed or is gone. A claim whose
undo could not ask Proxmox leaves its container `error` and its member `claimed`; the later
check that settles the container (the reconciler, the container's Reconcile, its delete)
then calls `claim_settle`, which looks at the CT and settles the member the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import F

from networking.models import Node, NodeState, Site
from portal.errors import UpstreamError

from ..proxmox import ProxmoxClient, ProxmoxNotFound
from ..tags import container_id_of, tag_set
from .models import POOL_TAG, PoolMember, PoolMemberState, PoolTarget

if TYPE_CHECKING:
    from ..models import Container, Job, Template

# The job's params that make a create a claim (containers/jobs/claim.py).
MEMBER_PARAM = "pool_member"
DISK_PARAM = "pool_disk_gib"  # the member's disk as it was made: the claim grows it if asked
CANDIDATES = 20  # ready members tried before a create falls back to making its own


# -- in the create's transaction -----------------------------------------------------------------
def member_take(*, site: Site, template: Template, disk_gib: int) -> PoolMember | None:
    """Claim a ready member that fits the create, or None (the create makes its own CT).

    A LaunchPad deployment's first push takes one as a plain create does: its job runs the
    claim's steps, then the deploy's (containers/jobs/deploy.py)."""
    if not template.enabled:
        return None
    count = site.nodes.count()
    candidates = (
        PoolMember.objects.filter(
            site=site,
            template=template,
            volid=template.volid,
            state=PoolMemberState.READY,
            node__state=NodeState.ACTIVE,
            disk_gib__lte=disk_gib,
        )
        .select_related("node")
        .order_by("vmid")[:CANDIDATES]
    )
    for member in candidates:
        if not count or member.vmid % count != member.node.slot:
            continue  # the site's nodes changed since it was made: not on its parity node
        taken = PoolMember.objects.filter(pk=member.pk, state=PoolMemberState.READY).update(
            state=PoolMemberState.CLAIMED, message="claimed by a create"
        )
        if taken:
            member.state = PoolMemberState.CLAIMED
            return member
    return None


def placement(member: PoolMember | None) -> tuple[int, Node] | None:
    """The VMID and node a claimed member gives the new container (None: choose them)."""
    return (member.vmid, member.node) if member is not None else None


def claimed(container: Container, member: PoolMember | None) -> dict[str, Any]:
    """Count the hit or the miss; the job's params for a claim ({} for a normal create)."""
    pools = PoolTarget.objects.filter(template_id=container.template_id)
    if member is None:
        pools.filter(node_id=container.node_id, target__gt=0).update(misses=F("misses") + 1)
        return {}
    pools.filter(node_id=member.node_id).update(hits=F("hits") + 1)
    from ..tasks import enqueue_refill

    site_id = container.site_id
    transaction.on_commit(lambda: enqueue_refill(site_id))
    return {MEMBER_PARAM: member.pk, DISK_PARAM: member.disk_gib}


# -- after the create's transaction (its job, or its cancel) -------------------------------------
def is_claim(params: dict[str, Any] | None) -> bool:
    return bool((params or {}).get(MEMBER_PARAM))


def member_done(*, member_id: int) -> None:
    """The container runs on the member's CT: the row goes (the container holds the VMID)."""
    PoolMember.objects.filter(pk=member_id, state=PoolMemberState.CLAIMED).delete()


def member_return(*, member_id: int) -> bool:
    """Its CT is as the refill made it: ready for the next create again."""
    return bool(
        PoolMember.objects.filter(pk=member_id, state=PoolMemberState.CLAIMED).update(
            state=PoolMemberState.READY, message=""
        )
    )


def member_drop(*, member_id: int) -> None:
    """Its CT was destroyed (or is gone): the row and its VMID go."""
    PoolMember.objects.filter(pk=member_id).delete()


def claim_cancelled(job: Job) -> None:
    """A claimed create (or first push) cancelled before it ran touched nothing: the member
    goes back."""
    if is_claim(job.params):
        member_return(member_id=int(job.params[MEMBER_PARAM]))


# -- a failed claim that a later check settles ----------------------------------------------------
def untouched(config: dict[str, Any], vmid: int) -> bool:
    """Still as the refill made it: the pool's tag, no container's tag, its neutral name."""
    tags = tag_set(config.get("tags"))
    return (
        POOL_TAG in tags
        and container_id_of(tags) is None
        and config.get("hostname") == f"pool-{vmid}"
        and not config.get("lock")
    )


def claim_settle(container: Container) -> str:
    """The member a failed claim left `claimed` follows its CT, once the container is
    settled (deleted, or its delete queued): what was done, in words ("" if none).

    Called by the later checks, after the container's own release: a claimed member is
    on the container's site and VMID. Its CT is read: gone, the container's (its delete
    destroys it) or someone else's, the row goes; as the refill made it and stopped, the
    member is ready again; still the pool's otherwise (or unreadable), it is `broken`,
    and the refill removes it once its node answers."""
    member = (
        PoolMember.objects.filter(
            site_id=container.site_id, vmid=container.vmid, state=PoolMemberState.CLAIMED
        )
        .select_related("node")
        .first()
    )
    if member is None:
        return ""
    node, vmid = member.node, member.vmid
    client = ProxmoxClient.for_node(node)
    try:
        try:
            config: dict[str, Any] | None = client.container_config(node.name, vmid)
        except ProxmoxNotFound:
            config = None
        back = (
            config is not None
            and untouched(config, vmid)
            and client.container_status(node.name, vmid).get("status") == "stopped"
        )
    except UpstreamError as exc:
        _member_broken(member, f"a failed claim's CT could not be read: {exc.message}")
        return f"pool member {vmid} is left to the refill (Proxmox did not answer: {exc.message})"
    if back:
        member_return(member_id=member.pk)
        return f"CT {vmid} was never configured and went back to the warm pool"
    if config is not None and POOL_TAG in tag_set(config.get("tags")):
        _member_broken(member, "a failed claim left it changed")
        return f"CT {vmid} still carries the pool's tag but was changed: the refill removes it"
    member_drop(member_id=member.pk)
    found = "gone" if config is None else "no longer the pool's"
    return f"pool member {vmid} is forgotten: its CT is {found}"


def _member_broken(member: PoolMember, message: str) -> None:
    PoolMember.objects.filter(pk=member.pk, state=PoolMemberState.CLAIMED).update(
        state=PoolMemberState.BROKEN, message=message[:300]
    )
