"""Allocation of numbers: the domain's arithmetic, addresses, ports, and the holes.

The rule is the one a scan of every used number gives: the lowest free one, a released
one first, at once. The tests check the answers against that scan (brute force in the
test), and that the queries a take makes do not grow with the rows.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Collection

import pytest
from django.db import connection, transaction
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from containers import allocation as container_allocation
from containers import services
from containers.models import Container, ContainerStatus
from networking import publishing
from networking.allocation import (
    Domain,
    IPv4Number,
    UsedInRows,
    free_port,
    mac_for,
    release,
    take_lowest,
)
from networking.models import FreeRange, NumberKind, PortMapping, Site
from portal.errors import ErrorCode, ResourceExhausted
from tests.factories import UserFactory, make_containers, make_site

pytestmark = pytest.mark.django_db


# -- the domain ----------------------------------------------------------------------------
@given(
    low=st.integers(0, 40),
    width=st.integers(0, 60),
    excluded=st.lists(st.tuples(st.integers(-5, 110), st.integers(0, 12)), max_size=4),
    modulus=st.integers(1, 4),
    data=st.data(),
)
def test_a_domain_counts_and_lists_its_members_as_brute_force_does(
    low: int, width: int, excluded: list[tuple[int, int]], modulus: int, data: st.DataObject
) -> None:
    remainders = data.draw(st.sets(st.integers(0, modulus - 1), min_size=1))
    ranges = [(a, a + w) for a, w in excluded]
    domain = Domain.of(low, low + width, excluded=ranges, modulus=modulus, remainders=remainders)
    members = [
        n
        for n in range(low, low + width + 1)
        if n % modulus in remainders and not any(a <= n <= b for a, b in ranges)
    ]
    lo = data.draw(st.integers(low - 3, low + width + 3))
    hi = data.draw(st.integers(lo - 1, low + width + 5))
    inside = [n for n in members if lo <= n <= hi]
    assert list(domain.members(lo, hi)) == inside
    assert domain.size(lo, hi) == len(inside)
    skip = set(data.draw(st.lists(st.sampled_from(members), max_size=3))) if members else set()
    assert domain.first(lo, hi, skip=skip) == next((n for n in inside if n not in skip), None)


# -- addresses -----------------------------------------------------------------------------
def test_an_address_as_a_number_is_the_same_on_every_database() -> None:
    site = make_site(None)
    made = make_containers(site, 3)
    addresses = ["10.15.0.9", "10.15.200.255", "10.15.17.128"]
    for c, ip in zip(made, addresses, strict=True):
        Container.objects.filter(pk=c.pk).update(ip=ip)
    numbers = dict(Container.objects.annotate(n=IPv4Number("ip")).values_list("ip", "n"))
    assert numbers == {ip: int(ipaddress.IPv4Address(ip)) for ip in addresses}


def _create(site: Site, name: str, *, owner: str = "") -> Container:
    user = UserFactory(username=owner or f"o-{name}")
    return services.container_create(
        owner=user, hostname=name, template=site.templates.get()
    ).container


def test_addresses_skip_the_reserved_ranges_the_dhcp_range_and_the_gateway(
    no_jobs: None, no_gateway_tasks: None
) -> None:
    site = make_site(None, reserved_ranges="10.15.0.0-10.15.0.255\n10.15.1.5\n10.15.1.8/30")
    got = [_create(site, f"a{i}").ip for i in range(8)]
    assert got == [
        "10.15.1.0",
        "10.15.1.1",
        "10.15.1.2",
        "10.15.1.3",
        "10.15.1.4",
        "10.15.1.6",
        "10.15.1.7",
        "10.15.1.12",
    ]


def test_a_released_address_and_its_mac_are_the_first_handed_out_again(
    no_jobs: None, no_gateway_tasks: None
) -> None:
    site = make_site(None)
    made = [_create(site, f"r{i}") for i in range(6)]
    for gone in (made[4], made[1]):
        services.container_set_status(container=gone, to=ContainerStatus.DELETED)
    again = [_create(site, f"s{i}") for i in range(3)]
    assert [(c.ip, c.mac) for c in again] == [
        (made[1].ip, made[1].mac),
        (made[4].ip, made[4].mac),
        ("10.15.1.6", mac_for(site.pk, "10.15.1.6")),
    ]


def test_a_full_subnet_is_the_same_clear_error_as_before(
    no_jobs: None, no_gateway_tasks: None
) -> None:
    site = make_site(
        None,
        subnet="10.0.0.0/29",  # hosts .1-.6: the gateway .1, DHCP .6, so .2-.5
        gateway_ip="10.0.0.1",
        reserved_ranges="",
        dhcp_range_start="10.0.0.6",
        dhcp_range_end="10.0.0.6",
    )
    assert [_create(site, f"f{i}").ip for i in range(4)] == [f"10.0.0.{i}" for i in range(2, 6)]
    with pytest.raises(ResourceExhausted, match="no free address left in 10.0.0.0/29") as exc:
        _create(site, "one-too-many")
    assert exc.value.code == ErrorCode.IP_EXHAUSTED


def test_mac_is_locally_administered_unicast_and_unique_per_ip() -> None:
    macs = {mac_for(1, f"10.15.1.{i}") for i in range(1, 255)}
    assert len(macs) == 254
    for mac in macs:
        first = int(mac.split(":")[0], 16)
        assert first & 0x02 and not first & 0x01
    assert mac_for(1, "10.15.1.7") == "02:01:0A:0F:01:07"


# -- ports ---------------------------------------------------------------------------------
def test_ports_are_the_lowest_free_ones_blocked_ones_skipped_and_exhaustion_is_clear(
    no_jobs: None, no_gateway_tasks: None
) -> None:
    site = make_site(None)
    c = _create(site, "p")  # its SSH port is site.ssh_port_min
    held = PortMapping.objects.filter(site=site, protocol="tcp")
    low = site.ssh_port_min
    with transaction.atomic():
        assert free_port(site.pk, "tcp", low, low + 5, held=held, blocked=[low + 1]) == low + 2
        PortMapping.objects.create(
            site=site, container=c, name="x", external_port=low + 2, container_port=80
        )
        assert free_port(site.pk, "tcp", low, low + 5, held=held, blocked=[low + 1]) == low + 3
        with pytest.raises(ResourceExhausted, match=f"no free port left in {low}-{low + 1}"):
            free_port(site.pk, "tcp", low, low + 1, held=held, blocked=[low + 1])


def test_released_ports_are_the_first_handed_out_again(
    no_jobs: None, no_gateway_tasks: None
) -> None:
    site = make_site(None)
    made = [_create(site, f"q{i}") for i in range(3)]
    low = site.ssh_port_min
    assert [c.ssh_port for c in made] == [low, low + 1, low + 2]
    services.container_set_status(container=made[1], to=ContainerStatus.DELETED)
    assert _create(site, "q3").ssh_port == low + 1  # the deleted container's SSH port
    added = [
        publishing.port_mapping_add(container=made[0], container_port=p, name=f"s{p}")
        for p in (80, 81, 82)
    ]
    service = [m.external_port for m in added]
    assert service == [site.service_port_min + i for i in range(3)]
    publishing.port_mapping_delete(mapping=added[0])
    again = publishing.port_mapping_add(container=made[2], container_port=90, name="t")
    assert again.external_port == service[0]


# -- the holes -----------------------------------------------------------------------------
def _take(site: Site, domain: Domain, skip: Collection[int] = ()) -> int | None:
    """A take over the VMIDs of the site's live containers (the test inserts the rows)."""
    used = UsedInRows(container_allocation.live_on(site), F("vmid"))
    return take_lowest(site.pk, NumberKind.VMID, domain, used, skip=skip)


def _hold(site: Site, vmid: int) -> None:
    """A live container with `vmid`, as the create service inserts it after a take."""
    seed = Container.objects.filter(site=site).first()
    assert seed is not None
    seed.pk, seed.vmid, seed.hostname = None, vmid, f"t{vmid}"
    seed.ip = f"10.15.{100 + vmid // 250}.{vmid % 250 + 1}"
    seed.mac = f"02:00:00:00:{vmid // 256:02x}:{vmid % 256:02x}"
    seed.save(force_insert=True)


def _take_and_hold(site: Site, domain: Domain, skip: Collection[int] = ()) -> int:
    vmid = _take(site, domain, skip)
    assert vmid is not None
    _hold(site, vmid)
    return vmid


def test_rows_that_came_without_the_allocation_leave_their_gaps_as_holes() -> None:
    site = make_site(None)
    made = make_containers(site, 10, first_vmid=100)  # 100..109, loaded in bulk
    Container.objects.filter(pk__in=[made[2].pk, made[7].pk]).update(status=ContainerStatus.DELETED)
    Container.objects.filter(pk=made[9].pk).update(vmid=150)  # and a jump
    domain = Domain.of(100, 999)
    assert [_take_and_hold(site, domain) for _ in range(5)] == [102, 107, 109, 110, 111]


def test_a_hole_a_row_took_without_the_allocation_is_passed_by() -> None:
    site = make_site(None)
    made = make_containers(site, 5, first_vmid=100)
    domain = Domain.of(100, 999)
    assert _take(site, domain) == 105  # accounts for 100..104: no hole
    release(site.pk, NumberKind.VMID, [101, 103])  # say both were freed
    Container.objects.filter(pk__in=[made[1].pk, made[3].pk]).update(status=ContainerStatus.DELETED)
    Container.objects.filter(pk=made[0].pk).update(vmid=101)  # but a row took 101 since
    assert _take(site, domain) == 103
    assert not FreeRange.objects.filter(site=site, first__lte=101, last__gte=101).exists()


def test_stale_holes_one_after_another_are_all_cut() -> None:
    site = make_site(None)
    made = make_containers(site, 5, first_vmid=100)
    domain = Domain.of(100, 999)
    assert _take(site, domain) == 105
    Container.objects.filter(pk=made[2].pk).update(status=ContainerStatus.DELETED)
    release(site.pk, NumberKind.VMID, [100, 101, 102])  # 100 and 101 are still held
    assert _take(site, domain) == 102
    assert list(FreeRange.objects.filter(site=site).values_list("first", "last")) == []


def test_numbers_skipped_for_proxmox_are_holes_handed_out_once_proxmox_lets_them_go() -> None:
    site = make_site(None)
    make_containers(site, 3, first_vmid=100)
    domain = Domain.of(100, 999)
    assert _take_and_hold(site, domain, {103, 104}) == 105
    assert _take_and_hold(site, domain, {103}) == 104
    assert _take_and_hold(site, domain) == 103
    assert _take_and_hold(site, domain) == 106


def test_a_number_lost_behind_the_allocations_back_is_found_when_the_range_runs_out() -> None:
    site = make_site(None)
    made = make_containers(site, 6, first_vmid=100)  # 100..105
    domain = Domain.of(100, 105)
    assert _take(site, domain) is None  # full; accounted up to 105
    Container.objects.filter(pk=made[3].pk).delete()  # 103 freed outright: no hole
    assert _take(site, domain) == 103


def test_the_queries_of_a_take_do_not_grow_with_the_rows() -> None:
    counts = []
    for size, slug in ((20, "small"), (2000, "large")):
        site = make_site(None, slug=slug)
        make_containers(site, size, first_vmid=100)
        domain = Domain.of(100, 999_999)
        _take(site, domain)  # the first take accounts for the rows loaded in bulk
        Container.objects.filter(site=site, vmid=100 + size // 2).update(
            status=ContainerStatus.DELETED
        )
        release(site.pk, NumberKind.VMID, [100 + size // 2])
        with CaptureQueriesContext(connection) as hole:
            assert _take(site, domain) == 100 + size // 2
        Container.objects.filter(site=site, vmid=100 + size // 2).update(
            status=ContainerStatus.RUNNING
        )
        with CaptureQueriesContext(connection) as end:
            assert _take(site, domain) == 100 + size
        counts.append((len(hole), len(end)))
    assert counts[0] == counts[1], counts


# -- the rule, against a scan --------------------------------------------------------------
SITES = itertools.count()


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(
        st.one_of(st.just("create"), st.integers(0, 30)),  # an int: delete the i-th live one
        min_size=1,
        max_size=25,
    ),
    maintenance=st.booleans(),
)
def test_creates_and_deletes_hand_out_what_a_scan_would(
    steps: list[str | int], maintenance: bool, no_jobs: None, no_gateway_tasks: None
) -> None:
    site = make_site(None, slug=f"scan{next(SITES)}")
    live: list[Container] = []
    for n, step in enumerate(steps):
        if maintenance and n in (len(steps) // 3, 2 * len(steps) // 3):  # pve1 away, back
            away = n == len(steps) // 3
            site.nodes.filter(slot=1).update(state="maintenance" if away else "active")
        if step == "create":
            expect_vmid = _scan_vmid(site)
            expect_ip = _scan_ip(site)
            c = _create(site, f"c{n}", owner=f"{site.slug}-{n}")
            assert (c.vmid, c.ip) == (expect_vmid, expect_ip)
            live.append(c)
        elif live:
            gone = live.pop(int(step) % len(live))
            services.container_set_status(container=gone, to=ContainerStatus.DELETED)


def _scan_vmid(site: Site) -> int:
    from django.conf import settings as conf

    used = set(container_allocation.live_on(site).values_list("vmid", flat=True))
    nodes = {n.slot: n for n in site.nodes.all()}
    return next(
        v
        for v in range(conf.VMID_MIN, conf.VMID_MAX + 1)
        if v not in used and nodes[v % len(nodes)].is_active
    )


def _scan_ip(site: Site) -> str:
    used = set(container_allocation.live_on(site).values_list("ip", flat=True))
    excluded = site.excluded_ranges()
    net = site.network
    for n in range(int(net.network_address) + 1, int(net.broadcast_address)):
        ip = str(ipaddress.IPv4Address(n))
        if ip not in used and not any(a <= n <= b for a, b in excluded):
            return ip
    raise AssertionError("full")
