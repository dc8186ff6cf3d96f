from __future__ import annotations

from typing import Any

from rest_framework import serializers

from networking.models import (
    Node,
    PortMapping,
    PortProtocol,
    Route,
    RouteAccess,
    RouteProtocol,
    Site,
)


class SiteSerializer(serializers.ModelSerializer):
    class Meta:
        model = Site
        fields = ("id", "name", "slug", "domain", "internal_domain")
        read_only_fields = fields


class NodeSerializer(serializers.ModelSerializer):
    """Capacity and state; never the API token or its secret."""

    site: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )

    class Meta:
        model = Node
        fields = (
            "id",
            "name",
            "site",
            "slot",
            "state",
            "max_cpu",
            "max_memory",
            "max_disk",
            "used_memory",
            "used_disk",
            "cpu_load",
            "load_1",
            "load_5",
            "load_15",
            "capacity_updated_at",
        )
        read_only_fields = fields


class RouteSerializer(serializers.ModelSerializer):
    """An HTTP service of a container at https://<subdomain>.<domain>/."""

    url = serializers.SerializerMethodField()

    class Meta:
        model = Route
        fields = ("id", "name", "subdomain", "url", "backend_port", "protocol", "access", "enabled")
        read_only_fields = fields

    def get_url(self, route: Route) -> str:
        return route.site.app_url(route.subdomain)


class RouteCreateSerializer(serializers.Serializer):
    name = serializers.CharField(
        max_length=40, help_text="The service's name: it is served at <name>-<hostname>."
    )
    backend_port = serializers.IntegerField(min_value=1, max_value=65535)
    protocol = serializers.ChoiceField(choices=RouteProtocol.choices, default=RouteProtocol.HTTP)
    access = serializers.ChoiceField(choices=RouteAccess.choices, default=RouteAccess.USERS)


class RouteUpdateSerializer(serializers.Serializer):
    backend_port = serializers.IntegerField(min_value=1, max_value=65535, required=False)
    protocol = serializers.ChoiceField(choices=RouteProtocol.choices, required=False)
    access = serializers.ChoiceField(choices=RouteAccess.choices, required=False)
    enabled = serializers.BooleanField(required=False)


class PortMappingSerializer(serializers.ModelSerializer):
    class Meta:
        model = PortMapping
        fields = ("id", "name", "protocol", "external_port", "container_port")
        read_only_fields = fields


class PortMappingCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=63)
    container_port = serializers.IntegerField(min_value=1, max_value=65535)
    protocol = serializers.ChoiceField(choices=PortProtocol.choices, default=PortProtocol.TCP)
