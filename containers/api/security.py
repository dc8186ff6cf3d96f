"""`GET /api/v1/containers/{id}/security/`: the container's Wazuh agent as the status poll
last saw it, and a page of its recent alerts from the indexer (containers/wazuh/security.py).

Its owner, collaborators and staff see it (others: 404, as for the container itself). A
site without Wazuh answers 404 too; an indexer that fails is `alerts.error`, never a 5xx.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from containers.models import Container, WazuhAgent
from containers.wazuh.client import AlertSeverity
from containers.wazuh.models import AgentStatus
from containers.wazuh.security import (
    ALERTS_PAGE_SIZE,
    MAX_ALERTS_PAGE,
    AlertsShown,
    ContainerSecurity,
    container_security,
)
from portal.api.exceptions import ErrorSerializer
from portal.errors import NotFound


class SecurityQuerySerializer(serializers.Serializer):
    page = serializers.IntegerField(min_value=1, max_value=MAX_ALERTS_PAGE, default=1)


class WazuhAgentSerializer(serializers.ModelSerializer):
    status = serializers.ChoiceField(
        choices=AgentStatus.values,
        help_text="The manager's word (active, disconnected, never_connected, pending); "
        "missing: the manager does not list it; removal_pending: the container is gone and "
        "its agent waits for the sweep.",
    )
    status_display = serializers.CharField(source="get_status_display")

    class Meta:
        model = WazuhAgent
        fields = (
            "name",
            "agent_id",
            "status",
            "status_display",
            "last_keepalive",
            "version",
            "groups",
            "status_updated_at",
            "last_error",
        )
        read_only_fields = fields
        extra_kwargs = {
            "groups": {"help_text": "The agent's groups on the manager."},
            "status_updated_at": {"help_text": "When the status poll last read it."},
        }


class WazuhAlertSerializer(serializers.Serializer):
    time = serializers.DateTimeField(allow_null=True)
    level = serializers.IntegerField(help_text="The rule's level, 0 to 15.")
    severity = serializers.ChoiceField(
        choices=[s.value for s in AlertSeverity],
        help_text="The level's band, as Wazuh's dashboard names it: low 0-6, medium 7-11, "
        "high 12-14, critical 15 and above.",
    )
    description = serializers.CharField()
    rule_id = serializers.CharField()
    rule_groups = serializers.ListField(child=serializers.CharField())


class SecurityAlertsSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="Every alert of the agent, not only this page.")
    page = serializers.IntegerField()
    page_size = serializers.IntegerField()
    pages = serializers.IntegerField()
    error = serializers.CharField(
        allow_null=True, help_text="Why no alerts could be read (the indexer failed), or null."
    )
    results = WazuhAlertSerializer(many=True)


class ContainerSecuritySerializer(serializers.Serializer):
    agent = WazuhAgentSerializer(allow_null=True, help_text="Null: no agent registered yet.")
    alerts = SecurityAlertsSerializer(
        allow_null=True, help_text="Null: no agent, or no indexer configured for the site."
    )


def alerts_data(shown: AlertsShown) -> dict[str, Any]:
    return {
        "count": shown.total,
        "page": shown.page,
        "page_size": shown.page_size,
        "pages": shown.pages,
        "error": shown.error or None,
        "results": [WazuhAlertSerializer(a).data for a in shown.alerts],
    }


def security_data(found: ContainerSecurity) -> dict[str, Any]:
    return {
        "agent": WazuhAgentSerializer(found.agent).data if found.agent else None,
        "alerts": alerts_data(found.alerts) if found.alerts is not None else None,
    }


class ContainerSecurityMixin:
    """The `security` action of ContainerViewSet."""

    get_object: Any

    @extend_schema(
        summary="A container's security monitoring: its Wazuh agent and recent alerts",
        description=f"The agent as the status poll last read it, and a page of "
        f"{ALERTS_PAGE_SIZE} of its alerts, newest first (cached briefly). 404 when the "
        "container's site has no Wazuh manager.",
        parameters=[
            OpenApiParameter("page", OpenApiTypes.INT, description="Page of alerts, from 1.")
        ],
        responses={
            200: ContainerSecuritySerializer,
            400: OpenApiResponse(ErrorSerializer, description="Invalid page."),
            401: OpenApiResponse(ErrorSerializer, description="Not authenticated."),
            403: OpenApiResponse(ErrorSerializer, description="Not allowed."),
            404: OpenApiResponse(
                ErrorSerializer, description="No such container, not yours, or no Wazuh here."
            ),
            429: OpenApiResponse(ErrorSerializer, description="Throttled."),
        },
    )
    @action(detail=True, methods=["get"], pagination_class=None, filterset_class=None)
    def security(self, request: Request, pk: str | None = None) -> Response:
        container: Container = self.get_object()
        query = SecurityQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        found = container_security(container, page=query.validated_data["page"])
        if found is None:
            raise NotFound(f"{container.hostname} has no security monitoring")
        return Response(security_data(found))
