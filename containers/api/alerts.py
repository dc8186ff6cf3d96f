"""Noisy-neighbour alerts in the API: read-only, as the metrics poll keeps them
(containers/metrics/alerts.py). A container object carries its open ones too (`alerts`)."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, viewsets

from containers import selectors
from containers.metrics.models import ContainerAlert
from portal.api.base import parse_id
from portal.errors import NotFound

from .filters import AlertFilter
from .serializers import AlertSerializer
from .views import READ_ERRORS


@extend_schema_view(
    list=extend_schema(
        summary="Alerts of your containers (staff: all); open ones unless `state` says",
        description="Raised noisy-neighbour alerts, newest first: `?state=open` (the "
        "default), `cleared`, or `all`. A condition that has not yet held "
        "ALERT_FOR_MINUTES is not an alert yet and is not listed.",
        responses={200: AlertSerializer(many=True), **READ_ERRORS},
    ),
    retrieve=extend_schema(summary="An alert", responses={200: AlertSerializer, **READ_ERRORS}),
)
class AlertViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = AlertSerializer
    filterset_class = AlertFilter
    ordering_fields = ("raised_at", "since", "cleared_at")
    ordering = ("-raised_at", "-id")
    queryset = ContainerAlert.objects.none()

    def get_queryset(self) -> QuerySet[ContainerAlert]:
        return selectors.alerts_visible_to(self.request.user)

    def get_object(self) -> ContainerAlert:
        # Any alert of a container the caller may see, whatever `state` would filter.
        pk = parse_id(self.kwargs["pk"])
        found = None if pk is None else self.get_queryset().filter(pk=pk).first()
        if found is None:
            raise NotFound(f"no alert {self.kwargs['pk']}")
        return found
