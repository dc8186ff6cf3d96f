from __future__ import annotations

import django_filters
from django import forms
from django.db.models import QuerySet

from containers.metrics.models import AlertKind, AlertState, ContainerAlert
from containers.models import Container, ContainerStatus, Job, JobKind, JobStatus
from portal.api.base import ID_MAX

VMID_LIMIT = 999_999_999  # the largest VMID Proxmox allows


class IdFilter(django_filters.NumberFilter):
    """A database id: a whole number that fits the column (anything else is a 400)."""

    field_class = forms.IntegerField


class ContainerFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=ContainerStatus.choices)
    node = django_filters.CharFilter(field_name="node__name")
    site = django_filters.CharFilter(field_name="site__slug")
    hostname = django_filters.CharFilter(lookup_expr="icontains")
    vmid = IdFilter(field_name="vmid", min_value=1, max_value=VMID_LIMIT, help_text="A VMID.")
    owner = django_filters.CharFilter(
        method="filter_owner", help_text="Owner's username (staff only)."
    )

    class Meta:
        model = Container
        fields = ("status", "node", "site", "hostname", "vmid", "owner")

    def filter_owner(self, qs: QuerySet[Container], name: str, value: str) -> QuerySet[Container]:
        if not getattr(self.request, "user", None) or not self.request.user.is_staff:
            return qs
        return qs.filter(owner__username=value)


class JobFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=JobStatus.choices)
    kind = django_filters.ChoiceFilter(choices=JobKind.choices)
    container = IdFilter(
        field_name="container_id", min_value=1, max_value=ID_MAX, help_text="A container's id."
    )

    class Meta:
        model = Job
        fields = ("status", "kind", "container")


ALL_STATES = "all"


class AlertFilter(django_filters.FilterSet):
    """Open alerts unless `state` says otherwise."""

    state = django_filters.ChoiceFilter(
        choices=[*AlertState.choices, (ALL_STATES, ALL_STATES)],
        method="filter_state",
        help_text="open (the default), cleared, or all.",
    )
    kind = django_filters.ChoiceFilter(choices=AlertKind.choices)
    container = IdFilter(
        field_name="container_id", min_value=1, max_value=ID_MAX, help_text="A container's id."
    )
    site = django_filters.CharFilter(field_name="container__site__slug", help_text="A site's slug.")

    class Meta:
        model = ContainerAlert
        fields = ("state", "kind", "container", "site")

    def filter_queryset(self, queryset: QuerySet[ContainerAlert]) -> QuerySet[ContainerAlert]:
        if not self.form.cleaned_data.get("state"):
            queryset = self.filter_state(queryset, "state", AlertState.OPEN)
        return super().filter_queryset(queryset)

    def filter_state(
        self, qs: QuerySet[ContainerAlert], name: str, value: str
    ) -> QuerySet[ContainerAlert]:
        if value == AlertState.OPEN:
            return qs.filter(cleared_at__isnull=True)
        if value == AlertState.CLEARED:
            return qs.filter(cleared_at__isnull=False)
        return qs
