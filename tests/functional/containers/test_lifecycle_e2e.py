"""The container lifecycle end to end: services -> Redis -> a Celery worker process ->
proxmoxer over HTTPS -> the simulator, and back into the database."""

from __future__ import annotations

import threading

import pytest
from django.db import connections

from containers import services
from containers.models import Container, Job
from containers.proxmox import ProxmoxClient
from tests.conftest import wait_job
from tests.factories import UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def guest(sim, vmid: int) -> dict | None:
    return next((g for g in sim.admin.guests() if int(g["vmid"]) == vmid), None)


def test_create_stop_start_resize_delete(cluster, sim, worker) -> None:
    owner = UserFactory(username="alice")
    job = services.container_create(
        owner=owner,
        hostname="web",
        template=cluster.templates.get(),
        cores=2,
        memory_mib=1024,
        swap_mib=256,
        disk_gib=8,
    )
    c = job.container
    # The reservation is known before Proxmox is asked: the simulator's DHCP hands it out.
    sim.dhcp_hosts_path.write_text(f"{c.mac},{c.ip},{c.hostname}\n")

    job = wait_job(job.pk)
    assert job.status == "succeeded", job.error
    c.refresh_from_db()
    assert c.status == "running"
    assert c.node.name == ("pve1" if c.vmid % 2 else "pve2")
    assert [s["state"] for s in job.steps][:3] == ["done", "done", "done"]

    g = guest(sim, c.vmid)
    assert g is not None and g["node"] == c.node.name and g["status"] == "running"
    client = ProxmoxClient.for_node(c.node)
    config = client.container_config(c.node.name, c.vmid)
    assert config["cores"] == 2 and config["memory"] == 1024 and config["swap"] == 256
    assert f"hwaddr={c.mac}" in config["net0"] and "ip=dhcp" in config["net0"]
    assert "size=8G" in config["rootfs"]
    assert config["unprivileged"] == 1 and "nesting=1" in config["features"]
    ifaces = client.interfaces(c.node.name, c.vmid)
    eth0 = next(i for i in ifaces if i["name"] == "eth0")
    assert any(a["ip-address"] == c.ip for a in eth0["ip-addresses"])

    job = wait_job(services.container_stop(container=c, actor=owner).pk)
    assert job.status == "succeeded", job.error
    c.refresh_from_db()
    assert c.status == "stopped" and guest(sim, c.vmid)["status"] == "stopped"

    job = wait_job(services.container_start(container=c, actor=owner).pk)
    assert job.status == "succeeded", job.error
    c.refresh_from_db()
    assert c.status == "running"

    job = wait_job(
        services.container_resize(
            container=c, actor=owner, cores=3, memory_mib=2048, disk_gib=10
        ).pk
    )
    assert job.status == "succeeded", job.error
    config = client.container_config(c.node.name, c.vmid)
    assert config["cores"] == 3 and config["memory"] == 2048 and "size=10G" in config["rootfs"]
    c.refresh_from_db()
    assert (c.cores, c.memory_mib, c.disk_gib) == (3, 2048, 10)

    job = wait_job(services.container_delete(container=c, actor=owner).pk)
    assert job.status == "succeeded", job.error
    c.refresh_from_db()
    assert c.status == "deleted" and guest(sim, c.vmid) is None
    # Its name and address are free again.
    again = services.container_create(owner=owner, hostname="web", template=cluster.templates.get())
    assert again.container.ip == c.ip
    assert wait_job(again.pk).status == "succeeded"


def test_fifty_concurrent_creates_get_distinct_allocations_on_the_right_nodes(
    cluster, sim, worker
) -> None:
    template = cluster.templates.get()
    owners = [UserFactory(username=f"u{i}") for i in range(50)]
    jobs: list[Job] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(50)

    def create(i: int) -> None:
        try:
            start.wait()
            job = services.container_create(owner=owners[i], hostname=f"ct{i}", template=template)
            with lock:
                jobs.append(job)
        except BaseException as exc:  # collected and reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=create, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    live = list(Container.objects.select_related("node"))
    assert (
        len({c.vmid for c in live}) == len({c.ip for c in live}) == len({c.mac for c in live}) == 50
    )
    for c in live:
        assert c.node.name == ("pve1" if c.vmid % 2 else "pve2"), c
    finished = [wait_job(j.pk, timeout=120) for j in jobs]
    assert [j.status for j in finished] == ["succeeded"] * 50, [
        j.error for j in finished if j.error
    ]
    on_sim = {int(g["vmid"]): g["node"] for g in sim.admin.guests()}
    for c in live:
        assert on_sim.get(c.vmid) == c.node.name


def test_a_vmid_used_on_proxmox_is_skipped(cluster, sim, worker) -> None:
    used = {int(g["vmid"]) for g in sim.admin.guests()}
    foreign = next(v for v in range(100, 10000) if v not in used)
    sim.admin.create_foreign_guest("pve1" if foreign % 2 else "pve2", foreign, name="not-ours")
    services.forget_proxmox_vmids(cluster)
    job = services.container_create(
        owner=UserFactory(), hostname="fresh", template=cluster.templates.get()
    )
    assert job.container.vmid != foreign
    assert wait_job(job.pk).status == "succeeded"
    assert guest(sim, foreign)["conf"]["hostname"] == "not-ours"  # untouched
