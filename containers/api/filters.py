from __future__ import annotations

import django_filters
from django import forms
from django.db.models import QuerySet

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
