"""Placement by parity (and by VMID mod N), through the create service's allocation."""

from __future__ import annotations

import pytest
from django.db import transaction

from containers import allocation, services
from containers.models import Container, ContainerStatus
from containers.placement import node_for, slot_for, vmid_domain
from networking.models import NodeState, Site
from portal.errors import ErrorCode, ResourceExhausted
from tests.factories import UserFactory, make_containers, make_site

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_jobs", "no_gateway_tasks")]


def create(site: Site, name: str) -> Container:
    return services.container_create(
        owner=UserFactory(username=f"o-{name}"), hostname=name, template=site.templates.get()
    ).container


def placed(site: Site, count: int, prefix: str) -> list[tuple[int, str]]:
    made = [create(site, f"{prefix}{i}") for i in range(count)]
    return [(c.vmid, c.node.name) for c in made]


def delete(c: Container) -> None:
    services.container_set_status(container=c, to=ContainerStatus.DELETED)


def test_odd_vmids_go_to_pve1_and_even_to_pve2() -> None:
    site = make_site(None)
    assert placed(site, 6, "c") == [
        (100, "pve2"),
        (101, "pve1"),
        (102, "pve2"),
        (103, "pve1"),
        (104, "pve2"),
        (105, "pve1"),
    ]


def test_n_nodes_use_vmid_mod_n() -> None:
    site = make_site(None, node_names=("n0", "n1", "n2"))
    got = placed(site, 9, "c")
    assert [v for v, _ in got] == list(range(100, 109))
    assert all(name == f"n{slot_for(v, 3)}" for v, name in got)


def test_a_node_in_maintenance_is_skipped_and_its_vmids_come_first_when_it_is_back() -> None:
    site = make_site(None)
    assert placed(site, 2, "a") == [(100, "pve2"), (101, "pve1")]
    site.nodes.filter(name="pve1").update(state=NodeState.MAINTENANCE)  # no odd VMIDs now
    assert placed(site, 3, "b") == [(102, "pve2"), (104, "pve2"), (106, "pve2")]
    site.nodes.filter(name="pve1").update(state=NodeState.ACTIVE)
    assert placed(site, 4, "c") == [(103, "pve1"), (105, "pve1"), (107, "pve1"), (108, "pve2")]


def test_a_deleted_containers_vmid_is_the_first_handed_out_again_on_its_node() -> None:
    site = make_site(None)
    made = [create(site, f"c{i}") for i in range(6)]
    delete(made[3])
    delete(made[0])
    assert placed(site, 3, "d") == [(100, "pve2"), (103, "pve1"), (106, "pve2")]


def test_vmids_proxmox_has_are_never_taken_and_come_back_when_it_lets_them_go() -> None:
    site = make_site(None)
    with transaction.atomic():
        assert allocation.next_vmid(site, skip={100, 101, 102})[0] == 103
    make_containers(site, 1, first_vmid=103)
    with transaction.atomic():
        vmid, node = allocation.next_vmid(site, skip={101})
    assert (vmid, node.name) == (100, "pve2")


def test_containers_loaded_without_the_allocation_leave_their_gaps_to_fill() -> None:
    site = make_site(None)
    made = make_containers(site, 8, first_vmid=100)
    Container.objects.filter(pk__in=[made[1].pk, made[4].pk]).update(status=ContainerStatus.DELETED)
    assert placed(site, 3, "c") == [(101, "pve1"), (104, "pve2"), (108, "pve2")]


def test_exhaustion_is_the_same_clear_error_as_before(settings: object) -> None:
    settings.VMID_MAX = 103  # type: ignore[attr-defined]
    site = make_site(None)
    placed(site, 4, "c")
    with pytest.raises(ResourceExhausted, match="no free VMID left between 100 and 103") as exc:
        create(site, "one-too-many")
    assert exc.value.code == ErrorCode.VMID_EXHAUSTED


def test_no_active_node_and_misnumbered_slots_are_clear_errors() -> None:
    site = make_site(None)
    site.nodes.update(state=NodeState.OFFLINE)
    with pytest.raises(ResourceExhausted, match="no node of the site is active") as exc:
        create(site, "nowhere")
    assert exc.value.code == ErrorCode.NO_ACTIVE_NODE
    nodes = list(make_site(None, slug="other").nodes.order_by("slot"))
    nodes[1].slot = 2
    with pytest.raises(ResourceExhausted, match="slots must be 0..1"):
        vmid_domain(nodes, vmid_min=100, vmid_max=999)
    with pytest.raises(ResourceExhausted, match="the site has no nodes"):
        vmid_domain([], vmid_min=100, vmid_max=999)


def test_a_vmid_lives_on_the_node_of_its_slot() -> None:
    nodes = list(make_site(None, node_names=("n0", "n1", "n2")).nodes.order_by("slot"))
    assert [node_for(v, nodes).name for v in (300, 301, 302, 303)] == ["n0", "n1", "n2", "n0"]
