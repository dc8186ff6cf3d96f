"""Placement by VMID: a container with VMID v lives on the node whose slot is v mod N.

With two nodes that is the house rule: odd VMIDs on pve1 (slot 1), even on pve2
(slot 0). N counts every node of the site, whatever its state, so taking a node
into maintenance never moves the rule; VMIDs that map to a node that is not active
are simply skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, TypeVar

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


def choose_vmid(
    nodes: Sequence[N], used: Iterable[int], *, vmid_min: int, vmid_max: int
) -> tuple[int, N]:
    """The smallest free VMID >= vmid_min that maps to an active node, and that node."""
    if not nodes:
        raise ResourceExhausted("the site has no nodes", code=ErrorCode.NO_NODES)
    check_slots(nodes)
    by_slot = {n.slot: n for n in nodes}
    if not any(n.is_active for n in nodes):
        raise ResourceExhausted(
            "no node of the site is active; try again later", code=ErrorCode.NO_ACTIVE_NODE
        )
    taken = set(used)
    count = len(nodes)
    vmid = vmid_min
    while vmid <= vmid_max:
        node = by_slot[slot_for(vmid, count)]
        if node.is_active and vmid not in taken:
            return vmid, node
        vmid += 1
    raise ResourceExhausted(
        f"no free VMID left between {vmid_min} and {vmid_max}", code=ErrorCode.VMID_EXHAUSTED
    )
