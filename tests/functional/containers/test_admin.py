"""The Django admin's operator actions on the real stack (worker, simulator): each calls a
service, reports per object, is audited; a node's token secret never appears in a page."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from django.test import Client

from auth.models import AuditEntry
from containers import services
from containers.models import Container, Job
from containers.proxmox import ProxmoxClient
from networking.models import Node
from tests.conftest import wait_job
from tests.factories import UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CONTAINERS = "/admin/containers/container/"
JOBS = "/admin/containers/job/"
NODES = "/admin/networking/node/"


@pytest.fixture
def staff() -> Client:
    client = Client()
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def act(client: Client, url: str, action: str, *pks: Any) -> str:
    """POST the changelist's action form; the messages shown afterwards, one a line, as
    "<level>: <text>" in lower case (the admin capitalises them). The whole page is
    checked not to hold the token secret of any node."""
    response = client.post(
        url, {"action": action, "_selected_action": [str(pk) for pk in pks]}, follow=True
    )
    assert response.status_code == 200
    page = response.content.decode()
    for secret in Node.objects.values_list("token_secret", flat=True):
        assert secret not in page
    found = re.search(r'<ul class="messagelist">(.*?)</ul>', page, re.S)
    return "\n".join(
        f"{level}: {html.unescape(text).strip()}".lower()
        for level, text in re.findall(
            r'<li class="(\w+)">(.*?)</li>', found[1] if found else "", re.S
        )
    )


def running_container(cluster: Any, sim: Any, hostname: str = "web") -> Container:
    job = services.container_create(
        owner=UserFactory(username="alice"), hostname=hostname, template=cluster.templates.get()
    )
    c = job.container
    with sim.dhcp_hosts_path.open("a") as f:
        f.write(f"{c.mac},{c.ip},{c.hostname}\n")
    job = wait_job(job.pk)
    assert job.status == "succeeded", job.error
    c.refresh_from_db()
    assert c.status == "running"
    return c


def last_job(c: Container, kind: str) -> Job:
    job = c.jobs.filter(kind=kind).order_by("-created_at").first()
    assert job is not None, f"no {kind} job queued"
    return wait_job(job.pk)


def test_stop_start_reconcile_delete_through_the_admin(cluster, sim, worker, staff) -> None:
    c = running_container(cluster, sim)

    page = act(staff, CONTAINERS, "stop", c.pk)
    assert "stop queued" in page
    assert last_job(c, "stop").status == "succeeded"
    c.refresh_from_db()
    assert c.status == "stopped"

    # A second stop is refused by the service, and said so per container.
    page = act(staff, CONTAINERS, "stop", c.pk)
    assert "cannot stop web while it is stopped" in page

    act(staff, CONTAINERS, "start", c.pk)
    assert last_job(c, "start").status == "succeeded"
    c.refresh_from_db()
    assert c.status == "running"

    # Stopped behind the portal's back: reconcile reads Proxmox and records it.
    client = ProxmoxClient.for_node(c.node)
    client.wait_task(client.stop(c.node.name, c.vmid))
    page = act(staff, CONTAINERS, "reconcile", c.pk)
    assert "success: web: stopped on proxmox, running -> stopped" in page
    c.refresh_from_db()
    assert c.status == "stopped"
    assert AuditEntry.objects.filter(action="container.reconcile", object_id=str(c.pk)).exists()

    act(staff, CONTAINERS, "delete", c.pk)
    assert last_job(c, "delete").status == "succeeded"
    c.refresh_from_db()
    assert c.status == "deleted"
    actions = set(AuditEntry.objects.filter(object_id=str(c.pk)).values_list("action", flat=True))
    assert {"container.stop", "container.start", "container.delete"} <= actions

    page = act(staff, CONTAINERS, "reconcile", c.pk)
    assert "web is deleted" in page


def test_reconcile_marks_a_missing_ct_error(cluster, sim, worker, staff) -> None:
    c = running_container(cluster, sim, "gone")
    client = ProxmoxClient.for_node(c.node)
    client.wait_task(client.stop(c.node.name, c.vmid))
    client.wait_task(client.delete_container(c.node.name, c.vmid, purge=True, force=True))

    page = act(staff, CONTAINERS, "reconcile", c.pk)
    assert "gone: missing on proxmox" in page
    c.refresh_from_db()
    assert c.status == "error"
    assert c.status_message == f"CT {c.vmid} was not found on {c.node.name}"


def test_a_failed_start_is_retried_once_the_fault_is_gone(cluster, sim, worker, staff) -> None:
    c = running_container(cluster, sim)
    assert wait_job(services.container_stop(container=c, actor=None).pk).status == "succeeded"
    c.refresh_from_db()

    sim.admin.fail_next_tasks("vzstart", 1, "boom")
    act(staff, CONTAINERS, "start", c.pk)
    failed = last_job(c, "start")
    assert failed.status == "failed" and "boom" in failed.error

    page = act(staff, JOBS, "retry", failed.pk)
    assert f"job {failed.pk}: retried as job" in page
    retried = c.jobs.exclude(pk=failed.pk).filter(kind="start").get()
    assert retried.params == failed.params
    assert wait_job(retried.pk).status == "succeeded"
    c.refresh_from_db()
    assert c.status == "running"
    assert AuditEntry.objects.filter(action="job.retry", object_id=str(c.pk)).exists()

    # Only failed jobs are retried.
    page = act(staff, JOBS, "retry", retried.pk)
    assert "only a failed job can be retried" in page
    assert c.jobs.filter(kind="start").count() == 2


def test_a_failed_create_that_left_nothing_is_not_retried(cluster, sim, worker, staff) -> None:
    sim.admin.fail_next_tasks("vzcreate", 1, "unpacking template failed")
    job = services.container_create(
        owner=UserFactory(username="alice"), hostname="bad", template=cluster.templates.get()
    )
    job = wait_job(job.pk)
    assert job.status == "failed"
    page = act(staff, JOBS, "retry", job.pk)
    assert "create the container again" in page
    assert Job.objects.filter(container=job.container).count() == 1


def test_node_capacity_and_template_import(cluster, sim, staff) -> None:
    nodes = list(cluster.nodes.order_by("name"))
    page = act(staff, NODES, "refresh_capacity", *(n.pk for n in nodes))
    for node in nodes:
        assert f"success: {node}: connected (proxmox".lower() in page
        node.refresh_from_db()
        status = ProxmoxClient.for_node(node).node_status(node.name)
        assert node.max_cpu == status["cpuinfo"]["cpus"] > 0
        assert node.max_memory == status["memory"]["total"] > 0
        assert node.max_disk == status["rootfs"]["total"] > 0
        assert node.used_memory is not None and node.cpu_load is not None
        assert node.capacity_updated_at is not None
    assert AuditEntry.objects.filter(action="node.refresh_capacity").count() == 2

    cluster.templates.all().delete()
    found = ProxmoxClient.for_node(nodes[0]).templates(nodes[0].name)
    assert found
    page = act(staff, NODES, "import_templates", nodes[0].pk)
    assert page.startswith("success:") and "imported" in page, page
    volids = set(cluster.templates.values_list("volid", flat=True))
    assert volids == {str(t["volid"]) for t in found}
    assert AuditEntry.objects.filter(action="admin.import_templates").exists()


def test_a_node_with_a_bad_secret_reports_an_error_without_the_secret(cluster, staff) -> None:
    node = cluster.nodes.get(name="pve1")
    wrong = "0badc0de-wrong-secret-never-shown"
    node.token_secret = wrong
    node.save()
    page = act(staff, NODES, "refresh_capacity", node.pk)
    assert page.startswith("error: pve1"), page
    assert wrong not in page
    node.refresh_from_db()
    assert node.capacity_updated_at is None


def test_the_token_secret_is_never_in_an_admin_page(cluster, sim, staff) -> None:
    secret = sim.token_secret
    node = Node.objects.get(site=cluster, name="pve1")
    assert node.token_secret == secret
    act(staff, NODES, "refresh_capacity", node.pk)
    for path in (
        NODES,
        f"{NODES}{node.pk}/change/",
        f"/admin/networking/site/{cluster.pk}/change/",
        "/admin/networking/site/",
    ):
        response = staff.get(path)
        assert response.status_code == 200, path
        assert secret not in response.content.decode(), path
