"""Placement by parity (and by VMID mod N), without any I/O."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from containers.placement import choose_vmid, slot_for
from portal.errors import ResourceExhausted


@dataclass
class FakeNode:
    name: str
    slot: int
    state: str = "active"

    @property
    def is_active(self) -> bool:
        return self.state == "active"


def two_nodes() -> list[FakeNode]:
    return [FakeNode("pve2", 0), FakeNode("pve1", 1)]


def test_odd_vmids_go_to_pve1_and_even_to_pve2() -> None:
    nodes = two_nodes()
    placed = []
    used: set[int] = set()
    for _ in range(6):
        vmid, node = choose_vmid(nodes, used, vmid_min=100, vmid_max=999)
        used.add(vmid)
        placed.append((vmid, node.name))
    assert placed == [
        (100, "pve2"),
        (101, "pve1"),
        (102, "pve2"),
        (103, "pve1"),
        (104, "pve2"),
        (105, "pve1"),
    ]


def test_n_nodes_use_vmid_mod_n() -> None:
    nodes = [FakeNode(f"n{i}", i) for i in range(3)]
    used: set[int] = set()
    for _ in range(9):
        vmid, node = choose_vmid(nodes, used, vmid_min=100, vmid_max=999)
        used.add(vmid)
        assert node.slot == vmid % 3 == slot_for(vmid, 3)
    assert sorted(used) == list(range(100, 109))


def test_a_node_in_maintenance_is_skipped_without_breaking_parity() -> None:
    nodes = two_nodes()
    nodes[1].state = "maintenance"  # pve1: no odd VMIDs now
    used: set[int] = set()
    for _ in range(3):
        vmid, node = choose_vmid(nodes, used, vmid_min=101, vmid_max=999)
        used.add(vmid)
        assert node.name == "pve2" and vmid % 2 == 0
    assert sorted(used) == [102, 104, 106]


def test_vmids_used_on_proxmox_are_never_taken() -> None:
    vmid, node = choose_vmid(two_nodes(), {100, 101, 102}, vmid_min=100, vmid_max=999)
    assert (vmid, node.name) == (103, "pve1")


def test_exhaustion_is_a_clear_error() -> None:
    with pytest.raises(ResourceExhausted, match="no free VMID left between 100 and 103"):
        choose_vmid(two_nodes(), {100, 101, 102, 103}, vmid_min=100, vmid_max=103)
    nodes = two_nodes()
    for n in nodes:
        n.state = "offline"
    with pytest.raises(ResourceExhausted, match="no node of the site is active"):
        choose_vmid(nodes, set(), vmid_min=100, vmid_max=999)


def test_slots_must_cover_0_to_n_minus_1() -> None:
    with pytest.raises(ResourceExhausted, match="slots must be 0..1"):
        choose_vmid([FakeNode("a", 0), FakeNode("b", 2)], set(), vmid_min=100, vmid_max=999)
