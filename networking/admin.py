from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from auth.audit import audit_record
from containers.node_load import nodes_with_commitments
from containers.wazuh.admin_status import NodeAgentColumns
from containers.wazuh.selectors import nodes_with_agents
from portal.actors import acting_user
from portal.admin_tools import ReadOnlyAdmin, ServiceAdmin, run_each
from portal.errors import PortalError

from . import publishing, services, site_services
from .admin_capacity import NodeCapacityColumns, site_capacity
from .models import ConfigRevision, Node, PortMapping, Route, Site


class NodeForm(forms.ModelForm):
    # Write-only: the stored secret is never rendered back; leaving it blank keeps it.
    token_secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Stored encrypted. Leave blank to keep the current secret.",
    )

    class Meta:
        model = Node
        fields = site_services.NODE_FIELDS

    def clean_token_secret(self) -> str:
        value: str = self.cleaned_data.get("token_secret") or ""
        if not value and self.instance.pk:
            return self.instance.token_secret
        return value


class NodeInline(ReadOnlyAdmin, admin.TabularInline):
    """Shown, not edited: a node is changed on its own page, through node_update."""

    model = Node
    extra = 0
    fields = ("name", "slot", "state", "api_url", "token_id")
    readonly_fields = fields
    show_change_link = True
    can_delete = False


@admin.register(Site)
class SiteAdmin(ServiceAdmin):
    list_display = (
        "name",
        "slug",
        "domain",
        "internal_domain",
        "subnet",
        "gateway_ip",
        "gateway_status",
    )
    search_fields = ("name", "slug", "domain")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ("capacity",)
    inlines = [NodeInline]
    actions = ["apply_gateway"]

    # Saved by site_create / site_update (validated, audited, a gateway apply when a
    # rendered value changed). A site is never deleted here: its rows are history.
    def save_model(self, request: HttpRequest, obj: Site, form: Any, change: bool) -> None:
        self.save_through(
            request,
            obj,
            form,
            change,
            fields=site_services.SITE_FIELDS,
            create=site_services.site_create,
            update=lambda site, **kw: site_services.site_update(site=site, **kw),
        )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_inlines(self, request: HttpRequest, obj: Any) -> list[Any]:
        return list(self.inlines) if obj is not None and obj.pk else []  # a new site: no nodes

    @admin.display(description="Capacity and load")
    def capacity(self, obj: Site) -> str:
        return site_capacity(obj)  # its nodes summed, as the probe last read them

    @admin.display(description="Gateway")
    def gateway_status(self, obj: Site) -> str:
        last = obj.config_revisions.first()
        if last is None:
            return "never applied"
        text = f"{last.status} (generation {last.generation})"
        return f"{text}, {len(last.excluded)} left out" if last.excluded else text

    @admin.action(description="Apply the gateway configuration now")
    def apply_gateway(self, request: HttpRequest, queryset: QuerySet[Site]) -> None:
        for site in queryset:
            services.request_apply(site, reason=f"admin {request.user}")
        self.message_user(
            request, f"asked {queryset.count()} gateway(s) to apply; see Config revisions"
        )


@admin.register(Node)
class NodeAdmin(NodeCapacityColumns, NodeAgentColumns, ServiceAdmin):
    form = NodeForm
    # Capacity and load as the beat probe last read them, and what the containers commit.
    list_display = ("name", "site", "slot", "state_shown", *NodeCapacityColumns.CAPACITY)
    list_filter = ("site", "state")
    search_fields = ("name",)
    HEALTH = ("offline_since", "offline_reason", "probed_at")
    readonly_fields = (
        *NodeCapacityColumns.CAPACITY,
        *NodeAgentColumns.WAZUH,
        *HEALTH,
        "created_at",
        "updated_at",
    )
    actions = ("refresh_capacity", "import_templates")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Node]:
        # One query for the list: the commitments, and the node's and containers' agents.
        return nodes_with_agents(nodes_with_commitments(super().get_queryset(request)))

    def get_list_display(self, request: HttpRequest) -> Any:
        # The Wazuh agents beside the capacity, only while some site has Wazuh.
        return (*super().get_list_display(request), *self.wazuh_columns(request))

    def get_fieldsets(self, request: HttpRequest, obj: Node | None = None) -> Any:
        if obj is None:
            return [(None, {"fields": site_services.NODE_FIELDS})]
        wazuh = self.wazuh_columns(request)
        return [
            (None, {"fields": site_services.NODE_FIELDS}),
            ("Capacity and load", {"fields": NodeCapacityColumns.CAPACITY}),
            *([("Security monitoring (Wazuh)", {"fields": wazuh})] if wazuh else []),
            ("Health", {"fields": self.HEALTH}),
            ("Record", {"fields": ("created_at", "updated_at")}),
        ]

    # Saved by node_create / node_update (validated, audited, a gateway apply when its name
    # or address changed). Not deleted here: its containers and history point at it.
    def save_model(self, request: HttpRequest, obj: Node, form: Any, change: bool) -> None:
        self.save_through(
            request,
            obj,
            form,
            change,
            fields=site_services.NODE_FIELDS,
            create=site_services.node_create,
            update=lambda node, **kw: site_services.node_update(node=node, **kw),
        )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Test the connection and read the capacity")
    def refresh_capacity(self, request: HttpRequest, queryset: QuerySet[Node]) -> None:
        def refresh(node: Node) -> str:  # audited by the service; errors never hold the secret
            version = site_services.node_refresh_capacity(node=node, actor=acting_user(request))
            return (
                f"{node}: connected (Proxmox {version}), {node.max_cpu} CPUs, "
                f"{(node.used_memory or 0) >> 20} of {(node.max_memory or 0) >> 20} MiB used"
            )

        run_each(self, request, queryset, refresh)

    @admin.action(description="Import templates from this node's site storage")
    def import_templates(self, request: HttpRequest, queryset: QuerySet[Node]) -> None:
        from containers.template_services import templates_import

        for site in Site.objects.filter(pk__in=queryset.values("site_id")):
            try:
                imported = templates_import(site=site)
            except PortalError as exc:
                self.message_user(request, f"{site}: {exc.message}", messages.ERROR)
                continue
            names = ", ".join(t.name for t in imported) or "none new"
            audit_record(
                actor=request.user,
                action="admin.import_templates",
                obj=site,
                summary=f"imported templates into {site}: {names}",
                changes={"templates": [t.name for t in imported]},
            )
            self.message_user(request, f"{site}: imported {names}", messages.SUCCESS)


@admin.register(ConfigRevision)
class ConfigRevisionAdmin(admin.ModelAdmin):
    """What each apply did; a failed one says why, and the live files kept serving."""

    list_display = (
        "id",
        "site",
        "generation",
        "status",
        "error_code",
        "left_out",
        "duration_ms",
        "created_at",
    )
    list_filter = ("site", "status", "error_code")
    readonly_fields = (
        "site",
        "generation",
        "content_hash",
        "status",
        "changed",
        "actions",
        "counts",
        "excluded",
        "timings",
        "duration_ms",
        "error_code",
        "error",
        "created_at",
    )

    @admin.display(description="Left out")
    def left_out(self, obj: ConfigRevision) -> int:
        return len(obj.excluded)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: ConfigRevision | None = None
    ) -> bool:
        return False


@admin.register(Route)
class RouteAdmin(ServiceAdmin):
    list_display = (
        "subdomain",
        "site",
        "container",
        "backend_port",
        "protocol",
        "access",
        "enabled",
    )
    list_filter = ("site", "protocol", "access", "enabled")
    search_fields = ("subdomain", "container__hostname")
    list_select_related = ("site", "container")
    fields = (
        "site",
        "container",
        "name",
        "subdomain",
        "backend_port",
        "protocol",
        "access",
        "enabled",
    )
    readonly_fields = ("site", "container", "name", "subdomain")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # routes are made with their container (or by route_add)

    def save_model(self, request: HttpRequest, obj: Route, form: Any, change: bool) -> None:
        self.call_service(
            request,
            lambda: publishing.route_update(
                route=obj,
                backend_port=obj.backend_port,
                protocol=obj.protocol,
                access=obj.access,
                enabled=obj.enabled,
                actor=acting_user(request),
            ),
        )

    def delete_model(self, request: HttpRequest, obj: Route) -> None:
        self.call_service(
            request, lambda: publishing.route_delete(route=obj, actor=acting_user(request))
        )

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Route]) -> None:
        for route in queryset:
            self.delete_model(request, route)


@admin.register(PortMapping)
class PortMappingAdmin(ServiceAdmin):
    list_display = ("external_port", "protocol", "site", "container", "container_port", "name")
    list_filter = ("site", "protocol")
    search_fields = ("container__hostname", "=external_port")
    list_select_related = ("site", "container")
    readonly_fields = (
        "site",
        "container",
        "name",
        "protocol",
        "external_port",
        "container_port",
        "created_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # ports are allocated by the services, under the site lock

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # every field is the allocator's; unpublish (delete) and add again

    def delete_model(self, request: HttpRequest, obj: PortMapping) -> None:
        self.call_service(
            request, lambda: publishing.port_mapping_delete(mapping=obj, actor=acting_user(request))
        )

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[PortMapping]) -> None:
        for mapping in queryset:
            self.delete_model(request, mapping)
