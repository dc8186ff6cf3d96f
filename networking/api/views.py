from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, permissions, viewsets

from networking.models import Node, Site
from portal.api.exceptions import ErrorSerializer

from .serializers import NodeSerializer, SiteSerializer

READ_ERRORS = {code: OpenApiResponse(ErrorSerializer) for code in (401, 403, 404, 429)}


@extend_schema_view(
    list=extend_schema(
        summary="Sites (clusters) and their domains",
        responses={200: SiteSerializer(many=True), **READ_ERRORS},
    ),
    retrieve=extend_schema(summary="A site", responses={200: SiteSerializer, **READ_ERRORS}),
)
class SiteViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = SiteSerializer
    queryset = Site.objects.order_by("name")
    filterset_fields = ("slug",)


@extend_schema_view(
    list=extend_schema(
        summary="Hypervisors (staff)",
        responses={
            200: NodeSerializer(many=True),
            403: OpenApiResponse(ErrorSerializer),
            **READ_ERRORS,
        },
    ),
    retrieve=extend_schema(
        summary="A hypervisor (staff)",
        responses={200: NodeSerializer, 403: OpenApiResponse(ErrorSerializer), **READ_ERRORS},
    ),
)
class NodeViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = NodeSerializer
    permission_classes = [permissions.IsAdminUser]
    queryset = Node.objects.none()
    filterset_fields = ("state",)

    def get_queryset(self) -> QuerySet[Node]:
        return Node.objects.select_related("site").order_by("site__slug", "slot")
