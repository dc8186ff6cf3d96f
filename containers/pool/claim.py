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
back (`ready`), `member_drop` forgets one whose CT was destroyed or is gone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import F

from networking.models import Node, NodeState, Site

from .models import PoolMember, PoolMemberState, PoolTarget

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
