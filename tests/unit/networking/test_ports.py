"""Allocation of gateway ports and names: race-free, bounded, released on delete."""

from __future__ import annotations

import threading

import pytest
from django.db import connections

from containers import services as containers
from containers.models import ContainerStatus
from networking import publishing
from networking.models import PortMapping, Route
from portal.errors import Conflict, ResourceExhausted, ValidationFailed
from tests.factories import UserFactory, make_site
from tests.fixtures.networking import create

pytestmark = pytest.mark.django_db(transaction=True)


def test_200_concurrent_allocations_never_collide(no_jobs: None, no_gateway_tasks: None) -> None:
    site = make_site(None)
    owners = [UserFactory(username=f"p{i}") for i in range(20)]
    boxes = [
        containers.container_create(
            owner=o, hostname=f"c{i}", template=site.templates.get()
        ).container
        for i, o in enumerate(owners)
    ]
    errors: list[BaseException] = []
    got: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(40)

    def allocate(n: int) -> None:
        try:
            start.wait()
            for k in range(5):
                m = publishing.port_mapping_add(
                    container=boxes[n % 20],
                    container_port=1000 + n * 5 + k,
                    protocol="tcp" if k % 2 else "udp",
                    name=f"s{n}-{k}",
                )
                with lock:
                    got.append((m.protocol, m.external_port))  # type: ignore[arg-type]
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=allocate, args=(n,)) for n in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(got) == len(set(got)) == 200
    rows = list(
        PortMapping.objects.filter(site=site)
        .exclude(name="ssh")
        .values_list("protocol", "external_port")
    )
    assert len(rows) == len(set(rows)) == 200
    for proto in ("tcp", "udp"):  # dense from the bottom of the service range
        ports = sorted(p for pr, p in rows if pr == proto)
        assert ports == list(range(site.service_port_min, site.service_port_min + len(ports)))
    ssh = sorted(
        PortMapping.objects.filter(site=site, name="ssh").values_list("external_port", flat=True)
    )
    assert ssh == list(range(site.ssh_port_min, site.ssh_port_min + 20))


def test_running_out_of_ports_is_a_clear_error_and_allocates_nothing(
    no_jobs: None, no_gateway_tasks: None
) -> None:
    site = make_site(None, ssh_port_min=20000, ssh_port_max=20001)
    a = containers.container_create(
        owner=UserFactory(), hostname="a", template=site.templates.get()
    )
    containers.container_create(owner=UserFactory(), hostname="b", template=site.templates.get())
    with pytest.raises(ResourceExhausted) as info:
        containers.container_create(
            owner=UserFactory(), hostname="c", template=site.templates.get()
        )
    assert info.value.code == "ports_exhausted"
    assert "no free TCP SSH port left on Local (20000-20001)" in info.value.message
    assert "widen the site's port range" in info.value.message
    assert not Route.objects.filter(subdomain="c").exists()
    assert a.container.routes.get().subdomain == "a"


def test_names_under_the_wildcard_are_unique_and_checked(
    no_jobs: None, no_gateway_tasks: None
) -> None:
    site = make_site(None)
    web = create(site, "web")
    api = publishing.route_add(container=web, name="api", backend_port=8080, access="owner")
    assert api.subdomain == "api-web"
    with pytest.raises(Conflict, match="already has a service 'api'"):
        publishing.route_add(container=web, name="api", backend_port=8081)
    with pytest.raises(Conflict) as info:
        create(site, "api-web")  # its default route would take the service's name
    assert info.value.code == "subdomain_taken"
    with pytest.raises(ValidationFailed, match="service name"):
        publishing.route_add(container=web, name="x" * 60, backend_port=80)
    with pytest.raises(ValidationFailed):
        publishing.route_add(container=web, name="bad;name", backend_port=80)
    with pytest.raises(ValidationFailed):
        publishing.route_update(route=api, backend_port=70000)
    with pytest.raises(ValidationFailed, match="default route"):
        publishing.route_delete(route=web.routes.get(name=""))


def test_route_and_port_adds_racing_a_delete_leave_nothing_behind(
    no_jobs: None, no_gateway_tasks: None
) -> None:
    """12 threads add routes and ports while the container is deleted (its job's release
    runs here); every add either lands before the delete, and is released with it, or is
    refused because the container is deleting."""
    import time

    from portal.errors import InvalidState

    site = make_site(None)
    owner = UserFactory()
    box = create(site, "racer", owner)
    box.jobs.update(status="succeeded")  # built (no Proxmox here)
    containers.container_set_status(container=box, to=ContainerStatus.PROVISIONING)
    containers.container_set_status(container=box, to=ContainerStatus.RUNNING)
    n = 12
    start = threading.Barrier(n + 1)
    added: list[str] = []
    refused: list[str] = []
    errors: list[BaseException] = []

    def adder(i: int) -> None:
        try:
            start.wait()
            deadline = time.monotonic() + 60
            for k in range(4000):  # until refused: the delete comes within a second or so
                if time.monotonic() > deadline:
                    return
                time.sleep(0.002)  # SQLite's busy wait is unfair: let the delete get in
                try:
                    if k % 2:
                        publishing.route_add(container=box, name=f"r{i}-{k}", backend_port=8000)
                    else:
                        publishing.port_mapping_add(
                            container=box, container_port=1 + i * 4000 + k, name=f"p{i}-{k}"
                        )
                    added.append(f"{i}-{k}")
                except InvalidState as exc:
                    refused.append(exc.message)
                    return
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=adder, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    start.wait()
    deadline = time.monotonic() + 20
    while len(added) < n and time.monotonic() < deadline:
        time.sleep(0.01)  # the adds are under way
    containers.container_delete(container=box, actor=owner)
    assert containers.container_set_status(container=box, to=ContainerStatus.DELETED)
    for t in threads:
        t.join()
    assert not errors, errors
    assert added, "no add landed before the delete: the race was not exercised"
    assert len(refused) == n  # every thread ended refused, none ran out of rounds
    said = {
        f"cannot change the routes or ports of racer while it is {s}"
        for s in ("deleting", "deleted")
    }
    assert set(refused) <= said, set(refused)
    assert not Route.objects.filter(container=box).exists()
    assert not PortMapping.objects.filter(container=box).exists()


def test_the_gateways_own_ports_and_its_stream_shards_status_ports_are_never_handed_out(
    no_jobs: None, no_gateway_tasks: None, settings: object
) -> None:
    site = make_site(None)
    low = site.ssh_port_min
    # The HTTP nginx's status port at the bottom of the SSH range, its 3 shards' after it.
    settings.GATEWAY_STATUS_LISTEN = f"127.0.0.1:{low}"  # type: ignore[attr-defined]
    settings.GATEWAY_STREAM_SHARDS = 3  # type: ignore[attr-defined]
    first = create(site, "web").port_mappings.get(name="ssh")
    assert first.external_port == low + 4
