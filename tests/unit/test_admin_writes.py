"""Every registered ModelAdmin of a model the services own (containers, sites, nodes,
templates, routes, port mappings, quota overrides) either refuses a write or overrides it
with a service call: no Model.save or delete by the ModelAdmin default, from any admin page
or inline. A new admin that uses the defaults fails here."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.admin.options import BaseModelAdmin, InlineModelAdmin, ModelAdmin
from django.db.models import Model
from django.test import RequestFactory

from auth.models import QuotaOverride, Webhook
from containers.models import (
    Container,
    ReconcileFinding,
    ReconcileRun,
    Template,
    WazuhAgent,
    WazuhManager,
)
from networking.models import Node, PortMapping, Route, Site
from tests.factories import UserFactory

MANAGED: tuple[type[Model], ...] = (
    Container,
    Site,
    Node,
    Template,
    Route,
    PortMapping,
    QuotaOverride,
    Webhook,  # validated URL, audited by host only (auth.notifications)
    ReconcileRun,  # written by the reconciler alone
    ReconcileFinding,
    WazuhManager,  # through wazuh_manager_save (secrets kept when blank, audited)
    WazuhAgent,  # written by the enrolment, poll and sweep alone
)

# A write, the permission that allows it, and the ModelAdmin methods that perform it.
WRITES = {
    "add": ("save_model",),
    "change": ("save_model",),
    "delete": ("delete_model", "delete_queryset"),
}


def _overridden(model_admin: BaseModelAdmin, method: str) -> bool:
    """Defined below ModelAdmin, and not by handing the write back to the default."""
    impl = getattr(type(model_admin), method)
    if impl is getattr(ModelAdmin, method):
        return False
    return f"super().{method}(" not in inspect.getsource(impl)


def holes(site: admin.AdminSite, request: Any) -> list[str]:
    """Each way a registered admin (or one of its inlines) writes a managed model by default."""
    found = []
    for model, model_admin in site._registry.items():
        if model in MANAGED:
            for perm, methods in WRITES.items():
                allowed = getattr(model_admin, f"has_{perm}_permission")
                allowed = allowed(request) if perm == "add" else allowed(request, None)
                for method in methods:
                    if allowed and not _overridden(model_admin, method):
                        found.append(f"{model.__name__}: {perm} by {method} default")
        for inline_class in model_admin.inlines:
            inline: InlineModelAdmin = inline_class(model, site)
            if inline.model not in MANAGED:
                continue
            for perm in WRITES:
                # An inline's rows are saved by the parent's save_formset.
                if getattr(inline, f"has_{perm}_permission")(request, None) and not _overridden(
                    model_admin, "save_formset"
                ):
                    found.append(f"{inline.model.__name__} inline in {model.__name__}: {perm}")
    return found


@pytest.fixture
def superuser_request() -> Any:
    request = RequestFactory().get("/admin/")
    request.user = UserFactory(username="root", is_staff=True, is_superuser=True)
    return request


@pytest.mark.django_db
def test_no_registered_admin_writes_a_managed_model_around_its_service(
    superuser_request: Any,
) -> None:
    managed_registered = {m for m in admin.site._registry if m in MANAGED}
    assert managed_registered == set(MANAGED)  # the walk covers every one
    assert holes(admin.site, superuser_request) == []


@pytest.mark.django_db
def test_the_walk_finds_an_admin_that_uses_the_defaults(superuser_request: Any) -> None:
    """The check above can fail: plain admins (and a plain inline) are each reported."""
    site = admin.AdminSite(name="holes")

    class NodeInline(admin.TabularInline):
        model = Node

    class SiteAdmin(admin.ModelAdmin):
        inlines = [NodeInline]

    class HandsBack(admin.ModelAdmin):
        def save_model(self, request: Any, obj: Any, form: Any, change: bool) -> None:
            super().save_model(request, obj, form, change)

    site.register(Site, SiteAdmin)
    site.register(Container)
    site.register(QuotaOverride, HandsBack)
    found = holes(site, superuser_request)
    assert "Site: change by save_model default" in found
    assert "Container: delete by delete_model default" in found
    assert "Container: delete by delete_queryset default" in found
    assert "QuotaOverride: add by save_model default" in found
    assert "QuotaOverride: delete by delete_model default" in found
    assert "Node inline in Site: add" in found


# -- the service-backed admins, through their pages ------------------------------------------
@pytest.fixture
def staff_client() -> Any:
    from django.test import Client

    client = Client()
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def _messages(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


@pytest.mark.django_db
def test_a_quota_override_is_granted_and_revoked_through_the_services(staff_client: Any) -> None:
    from auth.models import QUOTA_VALUE_MAX, AuditEntry

    user = UserFactory(username="bob")
    url = "/admin/accounts/quotaoverride/add/"
    # No limit named, then a value beyond the column: refused by quota_override_create.
    for extra, said in (
        ({}, "name at least one limit"),
        # (the service says so on SQLite; the form, from the column, on PostgreSQL)
        ({"max_cores": str(QUOTA_VALUE_MAX + 1)}, str(QUOTA_VALUE_MAX)),
    ):
        response = staff_client.post(url, {"user": user.pk, "reason": "x", **extra}, follow=True)
        assert not QuotaOverride.objects.exists(), extra
        form = response.context.get("adminform")
        shown = [*_messages(response), str(form.form.errors)] if form else _messages(response)
        assert any(said in m for m in shown), (extra, shown)
    response = staff_client.post(url, {"user": user.pk, "reason": "a course", "max_cores": "8"})
    assert response.status_code == 302
    override = QuotaOverride.objects.get()
    assert (override.max_cores, override.granted_by.username) == (8, "root")
    assert AuditEntry.objects.filter(action="quota.override", object_id=str(override.pk)).exists()

    change = f"/admin/accounts/quotaoverride/{override.pk}/change/"
    assert staff_client.post(change, {"user": user.pk, "max_cores": "99"}).status_code == 403
    response = staff_client.post(
        f"/admin/accounts/quotaoverride/{override.pk}/delete/", {"post": "yes"}
    )
    assert response.status_code == 302 and not QuotaOverride.objects.exists()
    assert AuditEntry.objects.filter(action="quota.revoke", object_id=str(override.pk)).exists()


@pytest.mark.django_db
def test_a_template_is_changed_through_its_service_and_never_deleted(staff_client: Any) -> None:
    from auth.models import AuditEntry
    from tests.admin_forms import post_change
    from tests.factories import make_site

    template = make_site(None).templates.get()
    url = f"/admin/containers/template/{template.pk}/change/"
    response = post_change(staff_client, url, enabled=False, volid="local:vztmpl/other.tar")
    assert response.redirect_chain
    template.refresh_from_db()
    assert not template.enabled and template.volid != "local:vztmpl/other.tar"
    entry = AuditEntry.objects.get(action="template.update", object_id=str(template.pk))
    assert entry.changes == {"enabled": False}
    # Refused by full_clean in the service (a default above the template's maximum)...
    response = post_change(staff_client, url, default_cores=9, max_cores=4)
    assert Template.objects.get(pk=template.pk).default_cores == template.default_cores
    delete = f"/admin/containers/template/{template.pk}/delete/"
    assert staff_client.post(delete, {"post": "yes"}).status_code == 403


@pytest.mark.django_db
def test_a_site_and_a_node_are_added_through_their_services(staff_client: Any) -> None:
    from auth.models import AuditEntry
    from networking.models import GatewayState

    response = staff_client.post(
        "/admin/networking/site/add/",
        {
            "name": "Second",
            "slug": "second",
            "domain": "apps.second.test",
            "internal_domain": "second.internal",
            "subnet": "10.20.0.0/16",
            "gateway_ip": "10.20.0.1",
            "reserved_ranges": "10.20.0.0-10.20.0.255",
            "dhcp_range_start": "10.20.255.0",
            "dhcp_range_end": "10.20.255.254",
            "bridge": "vmbr0",
            "rootfs_storage": "local-lvm",
            "ssh_port_min": "10000",
            "ssh_port_max": "21999",
            "service_port_min": "22000",
            "service_port_max": "32767",
            "public_port": "443",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    site = Site.objects.get(slug="second")
    assert AuditEntry.objects.filter(action="site.create", object_id=str(site.pk)).exists()
    assert GatewayState.objects.get(site=site).requested == 1

    response = staff_client.post(
        "/admin/networking/node/add/",
        {
            "site": site.pk,
            "name": "pve9",
            "api_url": "https://10.20.0.9:8006",
            "token_id": "portal@pve!portal",
            "token_secret": "s3cret-value",
            "slot": "0",
            "state": "active",
            "verify_tls": "on",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    node = Node.objects.get(site=site, name="pve9")
    assert node.token_secret == "s3cret-value"
    entry = AuditEntry.objects.get(action="node.create", object_id=str(node.pk))
    assert "s3cret-value" not in str(entry.changes) + entry.summary
    assert GatewayState.objects.get(site=site).requested == 2


@pytest.mark.django_db
def test_a_refused_route_or_port_delete_says_why_and_deletes_nothing(staff_client: Any) -> None:
    from containers import services
    from tests.factories import make_site

    site = make_site(None)
    c = services.container_create(
        owner=UserFactory(username="alice"), hostname="web", template=site.templates.get()
    ).container
    route, ssh = Route.objects.get(container=c), PortMapping.objects.get(container=c)
    for url, said in (
        (f"/admin/networking/route/{route.pk}/delete/", "the default route goes with"),
        (f"/admin/networking/portmapping/{ssh.pk}/delete/", "the SSH port goes with"),
    ):
        response = staff_client.post(url, {"post": "yes"}, follow=True)
        assert response.status_code == 200, url
        shown = _messages(response)
        assert any(said in m for m in shown) and not any("successfully" in m for m in shown)
    assert Route.objects.filter(pk=route.pk).exists()
    assert PortMapping.objects.filter(pk=ssh.pk).exists()
