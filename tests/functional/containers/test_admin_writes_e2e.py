"""The admin's container Delete button and change form on the real stack (worker,
simulator): each queues the normal job, so Proxmox and the portal agree afterwards."""

from __future__ import annotations

import pytest
from django.test import Client

from auth.models import AuditEntry
from containers import services
from containers.models import Container, ContainerStatus
from containers.proxmox import ProxmoxClient
from portal.errors import NotFound
from tests.admin_forms import post_change
from tests.factories import UserFactory
from tests.functional.containers.test_admin import CONTAINERS, last_job, running_container, staff

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

__all__ = ["staff"]  # the fixture, shared


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def on_proxmox(c: Container) -> bool:
    try:
        ProxmoxClient.for_node(c.node).container_status(c.node.name, c.vmid)
    except NotFound:
        return False
    return True


def test_the_delete_button_queues_the_delete_job(cluster, sim, worker, staff: Client) -> None:
    c = running_container(cluster, sim)
    url = f"{CONTAINERS}{c.pk}/delete/"
    page = staff.get(url)
    assert page.status_code == 200
    assert f"the delete job removes CT {c.vmid} from {c.node}" in page.content.decode()

    response = staff.post(url, {"post": "yes"}, follow=True)
    assert response.redirect_chain[-1][0] == f"{CONTAINERS}{c.pk}/change/"
    job = last_job(c, "delete")
    assert f"{c}: delete queued (job {job.pk})" in messages_of(response)
    assert job.status == "succeeded", job.error
    c.refresh_from_db()
    assert c.status == ContainerStatus.DELETED
    assert not on_proxmox(c)  # no orphan CT left running
    assert AuditEntry.objects.filter(action="container.delete", object_id=str(c.pk)).exists()

    # A second press is refused by the service, and said so; nothing else happens.
    response = staff.post(url, {"post": "yes"}, follow=True)
    assert "web is already deleted" in messages_of(response)
    assert c.jobs.filter(kind="delete").count() == 1

    # The address was released with the CT, so the next container may take it: whoever
    # holds it, exactly one CT on Proxmox carries the holder's MAC, and the old CT is gone.
    nxt = running_container(cluster, sim, "next")
    live = Container.objects.exclude(status=ContainerStatus.DELETED)
    assert list(live.values_list("ip", flat=True)) == [nxt.ip]
    # (Among this test's CTs: the session's simulator holds other tests' CTs too, and a
    # MAC is derived from the site's id and the address, so another test's may repeat it.)
    ours = {f"ct-{pk}" for pk in Container.objects.values_list("pk", flat=True)}
    api = ProxmoxClient.for_node(nxt.node)
    # (Only those: another test's CT may be destroyed between the list and its config.)
    mine = [g for g in api.guests() if ours & set(str(g.get("tags", "")).split(";"))]
    configs = [api.container_config(str(g["node"]), int(g["vmid"])) for g in mine]
    macs = [conf.get("net0", "").lower().count(nxt.mac.lower()) for conf in configs]
    assert sum(macs) == 1
    assert not on_proxmox(c) or c.vmid == nxt.vmid


def test_the_change_form_resizes_through_the_job_and_keeps_the_hostname(
    cluster, sim, worker, staff: Client
) -> None:
    c = running_container(cluster, sim, "mybox")
    assert c.cores == 1
    url = f"{CONTAINERS}{c.pk}/change/"
    response = post_change(staff, url, cores=3, hostname="renamed", status="stopped")
    job = last_job(c, "resize")
    assert f"{c}: resize queued (job {job.pk})" in messages_of(response)
    assert job.status == "succeeded", job.error
    c.refresh_from_db()
    assert (c.cores, c.hostname, c.status) == (3, "mybox", ContainerStatus.RUNNING)
    config = ProxmoxClient.for_node(c.node).container_config(c.node.name, c.vmid)
    assert int(config["cores"]) == 3 and config["hostname"] == "mybox"
    assert AuditEntry.objects.filter(action="container.resize", object_id=str(c.pk)).exists()

    # Refused by the service (disks only grow): said so, nothing queued, nothing written.
    response = post_change(staff, url, disk_gib=c.disk_gib - 1)
    assert any("disks only grow" in m for m in messages_of(response))
    assert c.jobs.filter(kind="resize").count() == 1
    assert Container.objects.get(pk=c.pk).disk_gib == c.disk_gib


def test_only_resources_are_editable_in_the_change_form(cluster, staff: Client) -> None:
    c = services.container_create(
        owner=UserFactory(username="alice"), hostname="web", template=cluster.templates.get()
    ).container
    form = staff.get(f"{CONTAINERS}{c.pk}/change/").context["adminform"].form
    assert set(form.fields) == {"cores", "memory_mib", "swap_mib", "disk_gib"}
