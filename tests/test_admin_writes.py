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

from auth.models import QuotaOverride
from containers.models import Container, Template
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
