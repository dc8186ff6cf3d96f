"""The audit log: each important write recorded once, by its service; read-only and
filterable in the admin; admin changes to sites and nodes; retention."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from auth import tokens as auth_tokens
from auth.audit import audit_prune, audit_record, request_address
from auth.models import AuditEntry, GroupPolicy
from containers import collaborators, resource_requests, services
from containers.models import Container, Job
from networking.models import Node
from tests.factories import UserFactory, make_site

pytestmark = pytest.mark.django_db


def settle(c: Container, status: str) -> None:
    Job.objects.filter(container=c).update(status="succeeded")
    Container.objects.filter(pk=c.pk).update(status=status)
    c.refresh_from_db()


def test_each_write_is_recorded_once_with_actor_address_object_and_summary() -> None:
    site = make_site()
    alice, staff = UserFactory(username="alice"), UserFactory(username="ops", is_staff=True)
    UserFactory(username="carol")
    with request_address("203.0.113.9"):
        c = services.container_create(
            owner=alice, hostname="web", template=site.templates.get()
        ).container
        settle(c, "running")
        services.container_stop(container=c, actor=alice)
        settle(c, "stopped")
        services.container_start(container=c, actor=alice)
        settle(c, "running")
        services.container_restart(container=c, actor=alice)
        settle(c, "running")
        services.container_resize(container=c, actor=alice, cores=2, memory_mib=1024)
        settle(c, "running")
        collaborators.collaborator_add(container=c, username="carol", actor=alice)
        settle(c, "running")
        collaborators.collaborator_remove(container=c, username="carol", actor=alice)
        settle(c, "running")
        token, _ = auth_tokens.token_create(user=alice, name="ci")
        auth_tokens.token_revoke(token=token, actor=alice)
        req = resource_requests.resource_request_create(
            user=alice, kind="quota", reason="need more for the course", limits={"max_cores": 16}
        )
        resource_requests.resource_request_approve(request=req, actor=staff)
        services.container_delete(container=c, actor=alice)
    counts = {
        a: AuditEntry.objects.filter(action=a).count()
        for a in (
            "container.create",
            "container.stop",
            "container.start",
            "container.restart",
            "container.resize",
            "collaborator.add",
            "collaborator.remove",
            "token.create",
            "token.revoke",
            "resource_request.create",
            "resource_request.approve",
            "quota.override",
            "container.delete",
        )
    }
    assert set(counts.values()) == {1}, counts
    create = AuditEntry.objects.get(action="container.create")
    assert create.actor == alice and create.actor_name == "alice"
    assert create.address == "203.0.113.9"
    assert (create.object_type, create.object_id) == ("containers.container", str(c.pk))
    assert create.summary.startswith("created web (CT ") and create.changes["cores"] == 1
    resize = AuditEntry.objects.get(action="container.resize")
    assert "cores 1 -> 2" in resize.summary and "memory_mib 512 -> 1024" in resize.summary
    assert AuditEntry.objects.get(action="resource_request.approve").actor == staff


def test_a_refused_write_records_nothing() -> None:
    site = make_site()
    alice, eve = UserFactory(), UserFactory()
    c = services.container_create(
        owner=alice, hostname="web", template=site.templates.get()
    ).container
    settle(c, "running")
    before = AuditEntry.objects.count()
    from portal.errors import NotFound

    with pytest.raises(NotFound):
        services.container_delete(container=c, actor=eve)
    assert AuditEntry.objects.count() == before


def test_secrets_never_reach_the_log() -> None:
    entry = audit_record(
        actor=None, action="x.test", changes={"password": "hunter2", "token": "t", "name": "ok"}
    )
    assert entry.changes == {"name": "ok"}


def staff_client() -> Client:
    client = Client()
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def test_the_admin_lists_and_filters_but_never_edits() -> None:
    audit_record(actor=None, action="login.failure", summary="failed login for 'x'")
    audit_record(actor=None, action="token.create", summary="created token")
    client = staff_client()
    page = client.get("/admin/accounts/auditentry/?action=login.failure")
    assert page.status_code == 200
    assert b"failed login for" in page.content and b"created token" not in page.content
    assert client.get("/admin/accounts/auditentry/?q=created").status_code == 200
    entry = AuditEntry.objects.get(action="token.create")
    assert client.get("/admin/accounts/auditentry/add/").status_code == 403
    change = client.get(f"/admin/accounts/auditentry/{entry.pk}/change/")
    assert change.status_code == 200 and b'name="_save"' not in change.content
    assert (
        client.post(f"/admin/accounts/auditentry/{entry.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert AuditEntry.objects.filter(pk=entry.pk).exists()


def test_admin_changes_to_sites_and_nodes_are_recorded_without_secret_values() -> None:
    site = make_site()
    node = site.nodes.get(name="pve1")
    client = staff_client()
    page = client.get(f"/admin/networking/node/{node.pk}/change/")
    form = page.context["adminform"].form
    data = {k: ("" if v is None else v) for k, v in form.initial.items() if k in form.fields}
    data.update(
        site=site.pk, token_secret="brand-new-secret-value", slot=node.slot, state=node.state
    )
    data["verify_tls"] = "on" if node.verify_tls else ""
    response = client.post(f"/admin/networking/node/{node.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    # Saved by node_update, which audits (field names; a secret's value never).
    entry = AuditEntry.objects.get(action="node.update", object_type="networking.node")
    assert entry.actor.username == "root" and entry.object_id == str(node.pk)
    assert "brand-new-secret-value" not in entry.summary + str(entry.changes)
    assert entry.summary == f"changed token_secret of node {node.name}"
    node.refresh_from_db()
    assert node.token_secret == "brand-new-secret-value"

    # A node is not deleted from the admin: its containers and history point at it.
    response = client.post(f"/admin/networking/node/{node.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
    assert Node.objects.filter(pk=node.pk).exists()


def test_admin_changes_to_quota_policies_are_recorded() -> None:
    client = staff_client()
    response = client.post(
        "/admin/accounts/grouppolicy/add/", {"description": "everyone", "max_containers": "3"}
    )
    assert response.status_code == 302
    entry = AuditEntry.objects.get(action="admin.add")
    assert entry.object_type == "accounts.grouppolicy" and "the default policy" in entry.summary
    assert GroupPolicy.objects.get().max_containers == 3


def test_resource_requests_are_approved_from_the_admin() -> None:
    owner = UserFactory()
    req = resource_requests.resource_request_create(
        user=owner, kind="quota", reason="more disk for datasets", limits={"max_disk_gib": 500}
    )
    client = staff_client()
    response = client.post(
        "/admin/accounts/resourcerequest/", {"action": "approve", "_selected_action": [req.pk]}
    )
    assert response.status_code == 302
    req.refresh_from_db()
    assert req.status == "approved" and req.override.max_disk_gib == 500


def test_old_entries_are_pruned_after_the_retention(settings) -> None:
    settings.AUDIT_RETENTION_DAYS = 30
    old = audit_record(actor=None, action="x.old")
    AuditEntry.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=31))
    keep = audit_record(actor=None, action="x.new")
    from auth.tasks import prune_audit

    assert prune_audit() == 1
    assert list(AuditEntry.objects.values_list("pk", flat=True)) == [keep.pk]
    settings.AUDIT_RETENTION_DAYS = 0
    AuditEntry.objects.filter(pk=keep.pk).update(created_at=timezone.now() - timedelta(days=9999))
    assert audit_prune() == 0
