"""Placement by VMID: a container with VMID v lives on the node whose slot is v mod N.

With two nodes that is the house rule: odd VMIDs on pve1 (slot 1), even on pve2
(slot 0). N counts every node of the site, whatever its state, so taking a node
into maintenance never moves the rule; VMIDs that map to a node that is not active
are simply skipped.

Which VMID is the lowest free one is asked of the database (containers.allocation,
networking.allocation); this module says which VMIDs may be handed out, and where each
lives.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

from networking.allocation import Domain
from portal.errors import ErrorCode, ResourceExhausted


class PlacedNode(Protocol):
    slot: int

    @property
    def is_active(self) -> bool: ...


N = TypeVar("N", bound=PlacedNode)


def slot_for(vmid: int, node_count: int) -> int:
    return vmid % node_count


def check_slots(nodes: Sequence[PlacedNode]) -> None:
    slots = sorted(n.slot for n in nodes)
    if slots != list(range(len(nodes))):
        raise ResourceExhausted(
            f"the site's node slots must be 0..{len(nodes) - 1}, found {slots}; an operator must fix them",
            code=ErrorCode.PLACEMENT_MISCONFIGURED,
        )


def vmid_domain(nodes: Sequence[PlacedNode], *, vmid_min: int, vmid_max: int) -> Domain:
    """The VMIDs from vmid_min to vmid_max that map to an active node."""
    if not nodes:
        raise ResourceExhausted("the site has no nodes", code=ErrorCode.NO_NODES)
    check_slots(nodes)
    active = [n.slot for n in nodes if n.is_active]
    if not active:
        raise ResourceExhausted(
            "no node of the site is active; try again later", code=ErrorCode.NO_ACTIVE_NODE
        )
    return Domain.of(vmid_min, vmid_max, modulus=len(nodes), remainders=active)


def node_for(vmid: int, nodes: Sequence[N]) -> N:
    """The node a VMID lives on: the one whose slot is vmid mod N."""
    slot = slot_for(vmid, len(nodes))
    return next(n for n in nodes if n.slot == slot)
