"""Concurrency: 100 creates across two worker processes, concurrent deletes, and route/port
adds racing a delete. Run on PostgreSQL in CI (DATABASE_URL); the agreement check ends each."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.db import close_old_connections, connection

from containers import services
from containers.models import Container, ContainerStatus, Job, JobStatus
from networking.models import ConfigRevision, PortMapping, Route
from networking.publishing import port_mapping_add, route_add
from portal.errors import PortalError
from tests.conftest import IN_CI, wait_job
from tests.factories import UserFactory
from tests.functional.reliability.agreement import assert_portal_agrees_with_cluster
from tests.functional.reliability.conftest import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.reliability, pytest.mark.django_db(transaction=True)]

CREATES = 100
POSTGRES = connection.vendor == "postgresql"


def in_threads(n: int, fn: Callable[[int], Any]) -> list[Any]:
    """Run fn(i) in n threads at once (each with its own connection); results or exceptions."""
    results: list[Any] = [None] * n
    start = threading.Barrier(n)

    def body(i: int) -> None:
        try:
            start.wait()
            results[i] = fn(i)
        except Exception as exc:
            results[i] = exc
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def all_final(timeout: float) -> None:
    wait_for(
        lambda: not Job.objects.filter(status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).exists(),
        timeout=timeout,
        interval=0.5,
        what="every job final",
    )


def ready(site: Any, hostname: str) -> Container:
    job = wait_job(
        services.container_create(
            owner=UserFactory(), hostname=hostname, template=site.templates.get()
        ).pk
    )
    assert job.status == JobStatus.SUCCEEDED, job.error
    return Container.objects.select_related("node").get(pk=job.container_id)


def test_hundred_creates_on_two_workers(site, fault_sim, own_workers) -> None:
    if not POSTGRES:
        message = "the concurrency figures are for PostgreSQL: set DATABASE_URL"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    a = own_workers("conc-a", concurrency=6)
    b = own_workers("conc-b", concurrency=6)
    owners = [UserFactory() for _ in range(10)]
    template = site.templates.get()
    revisions_before = ConfigRevision.objects.filter(site=site).count()
    started = time.monotonic()
    made = in_threads(
        10,
        lambda t: [
            services.container_create(owner=owners[t], hostname=f"c{t}x{i}", template=template).pk
            for i in range(CREATES // 10)
        ],
    )
    errors = [r for r in made if isinstance(r, Exception)]
    assert not errors, errors[:3]
    all_final(timeout=300)
    elapsed = time.monotonic() - started
    jobs = list(Job.objects.filter(kind="create", container__site=site))
    assert len(jobs) == CREATES
    failed = [(j.container.hostname, j.error) for j in jobs if j.status != JobStatus.SUCCEEDED]
    assert not failed, failed[:5]
    live = list(
        Container.objects.filter(site=site).exclude(status="deleted").select_related("node")
    )
    assert len(live) == CREATES
    for what in ("vmid", "ip", "mac", "hostname"):
        values = [getattr(c, what) for c in live]
        assert len(set(values)) == CREATES, f"{what} collides"
    ports = list(PortMapping.objects.filter(site=site).values_list("protocol", "external_port"))
    assert len(ports) == len(set(ports)) >= CREATES
    # Parity: odd VMIDs on the node with slot 1, even ones on slot 0.
    assert all(c.vmid % 2 == c.node.slot for c in live)
    assert {c.node.slot for c in live} == {0, 1}
    # Both worker processes took a share.
    ran = {j.worker.split("@")[0] for j in jobs}
    assert len(ran) == 2 and all(w.startswith("conc-") for w in ran), ran
    # The gateway coalesced: far fewer applies than changes.
    revisions = ConfigRevision.objects.filter(site=site).count() - revisions_before
    assert 1 <= revisions <= CREATES // 4, revisions
    print(f"\n{CREATES} creates on 2 workers in {elapsed:.1f} s, {revisions} gateway revisions")
    assert_portal_agrees_with_cluster(site, fault_sim, baseline=site.baseline)
    a.stop()
    b.stop()


def test_concurrent_deletes(site, fault_sim, own_workers) -> None:
    own_workers("del", concurrency=6)
    same = ready(site, "same")
    others = [ready(site, f"other{i}") for i in range(3)]
    # Five callers delete the same container at once: one job, the rest are told so.
    results = in_threads(5, lambda i: services.container_delete(container=same, actor=same.owner))
    accepted = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(accepted) == 1, results
    assert all(isinstance(r, PortalError) for r in refused), refused
    # Different containers at once: each one deleted.
    in_threads(
        len(others), lambda i: services.container_delete(container=others[i], actor=others[i].owner)
    )
    all_final(timeout=90)
    statuses = set(
        Container.objects.filter(pk__in=[same.pk, *(o.pk for o in others)]).values_list(
            "status", flat=True
        )
    )
    assert statuses == {ContainerStatus.DELETED}
    assert Job.objects.filter(container=same, kind="delete").count() == 1
    assert_portal_agrees_with_cluster(site, fault_sim, baseline=site.baseline)


def test_route_and_port_adds_against_delete(site, fault_sim, own_workers) -> None:
    own_workers("race", concurrency=4)
    ct = ready(site, "racer")
    fault_sim.admin.set_task_seconds("vzstop", 1.5)  # the delete stays in `deleting` a while
    job = services.container_delete(container=ct, actor=ct.owner)
    wait_for(
        lambda: Container.objects.get(pk=ct.pk).status == ContainerStatus.DELETING,
        timeout=10,
        what="the container deleting",
    )
    ct.refresh_from_db()
    stop = threading.Event()

    def add(i: int) -> int:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                if i % 2:
                    route_add(container=ct, name=f"r{i}n{n}", backend_port=8000 + n, actor=ct.owner)
                else:
                    port_mapping_add(
                        container=ct, container_port=9000 + n, name=f"p{i}n{n}", actor=ct.owner
                    )
            except PortalError:
                pass  # refused: what must happen to every add once the delete began
            time.sleep(0.01)
        return n

    adders = threading.Thread(target=lambda: in_threads(12, add))
    adders.start()
    wait_job(job.pk, timeout=60)
    stop.set()
    adders.join(30)
    ct.refresh_from_db()
    assert ct.status == ContainerStatus.DELETED
    late = (
        Route.objects.filter(container=ct).count()
        + PortMapping.objects.filter(container=ct).count()
    )
    assert late == 0, f"{late} routes and ports outlived the delete"
    assert_portal_agrees_with_cluster(site, fault_sim, baseline=site.baseline)
