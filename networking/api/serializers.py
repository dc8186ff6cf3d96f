from __future__ import annotations

from typing import Any

from rest_framework import serializers

from networking.models import Node, Site


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
            "capacity_updated_at",
        )
        read_only_fields = fields
