"""Input and output serializers: they map fields; the services decide."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from containers.metrics.alerts import open_alerts
from containers.metrics.history import CONSOLIDATIONS, TIMEFRAMES
from containers.metrics.models import AlertState, ContainerAlert
from containers.models import (
    MAX_CORES,
    MAX_DISK_GIB,
    MAX_MEMORY_MIB,
    MAX_SWAP_MIB,
    Container,
    ContainerSample,
    Job,
    JobLogEntry,
    Template,
)
from networking.models import RouteAccess
from portal.api.fast import FastRepresentation


class TemplateSerializer(serializers.ModelSerializer):
    site: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )

    class Meta:
        model = Template
        fields = (
            "id",
            "name",
            "display_name",
            "site",
            "os_type",
            "default_cores",
            "default_memory_mib",
            "default_swap_mib",
            "default_disk_gib",
            "max_cores",
            "max_memory_mib",
            "max_swap_mib",
            "max_disk_gib",
            "enabled",
        )
        read_only_fields = fields


class JobSerializer(serializers.ModelSerializer):
    container_hostname = serializers.SerializerMethodField()
    actor = serializers.SerializerMethodField()
    log_url = serializers.SerializerMethodField()
    events_url = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = (
            "id",
            "kind",
            "status",
            "container",
            "container_hostname",
            "actor",
            "progress",
            "steps",
            "error_code",
            "error",
            "attempts",
            "created_at",
            "started_at",
            "finished_at",
            "log_url",
            "events_url",
        )
        read_only_fields = fields

    def get_container_hostname(self, job: Job) -> str | None:
        return job.container.hostname if job.container else None

    def get_actor(self, job: Job) -> str | None:
        return job.actor.get_username() if job.actor else None

    def get_log_url(self, job: Job) -> str:
        return reverse("api:job-log", args=[job.pk])

    def get_events_url(self, job: Job) -> str:
        return reverse("api:job-events", args=[job.pk])


class JobLogEntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = JobLogEntry
        fields = ("id", "created_at", "level", "step", "message")
        read_only_fields = fields


class ContainerSampleSerializer(FastRepresentation, serializers.ModelSerializer):
    """The latest figures from the metrics poll (cpu: a fraction of `cpus`; bytes; bytes/s)."""

    class Meta:
        model = ContainerSample
        fields = (
            "sampled_at",
            "pve_status",
            "cpu",
            "cpus",
            "mem",
            "maxmem",
            "disk",
            "maxdisk",
            "uptime",
            "netin_rate",
            "netout_rate",
            "diskread_rate",
            "diskwrite_rate",
        )
        read_only_fields = fields


ALERT_VALUE_HELP = (
    "The last figure checked: memory used / its limit (memory), or CPU as a fraction of its "
    "cores (cpu)."
)


class OpenAlertSerializer(FastRepresentation, serializers.ModelSerializer):
    """An open noisy-neighbour alert, as the container object carries it."""

    class Meta:
        model = ContainerAlert
        fields = ("id", "kind", "since", "raised_at", "value", "message")
        read_only_fields = fields
        extra_kwargs = {
            "since": {"help_text": "When the condition was first seen, this time."},
            "raised_at": {"help_text": "When it had held ALERT_FOR_MINUTES and was raised."},
            "value": {"help_text": ALERT_VALUE_HELP},
        }


class AlertSerializer(serializers.ModelSerializer):
    """A raised alert of a container, open or cleared (GET /api/v1/alerts/)."""

    hostname = serializers.CharField(source="container.hostname", read_only=True)
    vmid = serializers.IntegerField(source="container.vmid", read_only=True)
    site = serializers.CharField(source="container.site.slug", read_only=True)
    node = serializers.CharField(source="container.node.name", read_only=True)
    state = serializers.SerializerMethodField()

    class Meta:
        model = ContainerAlert
        fields = (
            "id",
            "container",
            "hostname",
            "vmid",
            "site",
            "node",
            "kind",
            "state",
            "since",
            "raised_at",
            "cleared_at",
            "value",
            "message",
        )
        read_only_fields = fields
        extra_kwargs = {
            **OpenAlertSerializer.Meta.extra_kwargs,
            "container": {"help_text": "The container's id."},
            "cleared_at": {"help_text": "When the condition ended (null while open)."},
        }

    @extend_schema_field(serializers.ChoiceField(choices=AlertState.choices))
    def get_state(self, alert: ContainerAlert) -> str:
        return AlertState.CLEARED if alert.cleared_at is not None else AlertState.OPEN


def _sample_schema() -> dict[str, Any]:
    """ContainerSampleSerializer's shape, inline and nullable (a nullable `allOf` reference
    is not understood by every OpenAPI 3.0 validator)."""
    number, integer = {"type": "number"}, {"type": "integer"}
    rate = {"type": "number", "nullable": True, "description": "bytes/s since the poll before"}
    return {
        "type": "object",
        "nullable": True,
        "description": "The latest figures from the metrics poll; null until the first one.",
        "properties": {
            "sampled_at": {"type": "string", "format": "date-time"},
            "pve_status": {"type": "string"},
            "cpu": {**number, "description": "a fraction of `cpus` (1.0: all its cores)"},
            "cpus": number,
            **{k: integer for k in ("mem", "maxmem", "disk", "maxdisk", "uptime")},
            **{f"{k}_rate": rate for k in ("netin", "netout", "diskread", "diskwrite")},
        },
        "required": list(ContainerSampleSerializer.Meta.fields),
    }


class ContainerSerializer(FastRepresentation, serializers.ModelSerializer):
    site: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    node: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )
    owner = serializers.SerializerMethodField()
    template: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )
    fqdn = serializers.CharField(read_only=True)
    url = serializers.CharField(read_only=True)
    active_job = serializers.SerializerMethodField()
    deletes_at = serializers.DateTimeField(
        read_only=True,
        allow_null=True,
        help_text="When the expiry sweep deletes it unless extended (null: it does not expire).",
    )
    metrics = serializers.SerializerMethodField()
    alerts = serializers.SerializerMethodField(
        help_text="Its open noisy-neighbour alerts (raised, not cleared), by kind."
    )

    class Meta:
        model = Container
        fields = (
            "id",
            "hostname",
            "site",
            "node",
            "vmid",
            "status",
            "status_message",
            "owner",
            "template",
            "cores",
            "memory_mib",
            "swap_mib",
            "disk_gib",
            "ip",
            "mac",
            "fqdn",
            "url",
            "created_at",
            "updated_at",
            "running_since",
            "active_job",
            "expires_at",
            "deletes_at",
            "metrics",
            "alerts",
        )
        read_only_fields = fields

    def get_owner(self, c: Container) -> str:
        return c.owner.get_username()

    @extend_schema_field(serializers.UUIDField(allow_null=True))
    def get_active_job(self, c: Container) -> Any:
        active = getattr(c, "active_jobs", None)
        return str(active[0].pk) if active else None

    # The nested serializers, built once per serializer (a list's one child serves every
    # row): a ModelSerializer builds its fields from the model on first use, which cost
    # more than the rest of a row together when it was done for each.
    @cached_property
    def _sample(self) -> ContainerSampleSerializer:
        return ContainerSampleSerializer()

    @cached_property
    def _alerts(self) -> serializers.ListSerializer[Any]:
        return OpenAlertSerializer(many=True)  # type: ignore[return-value]

    @extend_schema_field(_sample_schema())
    def get_metrics(self, c: Container) -> dict[str, Any] | None:
        # A list selects the sample with the container (select_related): no query per row.
        sample = getattr(c, "sample", None)
        return self._sample.to_representation(sample) if sample is not None else None

    @extend_schema_field(OpenAlertSerializer(many=True))
    def get_alerts(self, c: Container) -> Any:
        # A list prefetches them (selectors.open_alerts_prefetch): no query per row.
        found = getattr(c, "open_alerts", None)
        return self._alerts.to_representation(open_alerts(c) if found is None else found)


class MetricsQuerySerializer(serializers.Serializer):
    timeframe = serializers.ChoiceField(choices=TIMEFRAMES, default="hour")
    cf = serializers.ChoiceField(choices=CONSOLIDATIONS, default="AVERAGE")


class LatestFiguresSerializer(serializers.Serializer):
    """The last poll's figures (null before the first) and swap, read live."""

    sampled_at = serializers.DateTimeField(allow_null=True)
    pve_status = serializers.CharField(allow_null=True)
    cpu = serializers.FloatField(allow_null=True)
    cpus = serializers.FloatField(allow_null=True)
    mem = serializers.IntegerField(allow_null=True)
    maxmem = serializers.IntegerField(allow_null=True)
    disk = serializers.IntegerField(allow_null=True)
    maxdisk = serializers.IntegerField(allow_null=True)
    uptime = serializers.IntegerField(allow_null=True)
    netin_rate = serializers.FloatField(allow_null=True)
    netout_rate = serializers.FloatField(allow_null=True)
    diskread_rate = serializers.FloatField(allow_null=True)
    diskwrite_rate = serializers.FloatField(allow_null=True)
    swap = serializers.IntegerField(allow_null=True)
    maxswap = serializers.IntegerField(allow_null=True)


class ContainerMetricsSerializer(serializers.Serializer):
    """Proxmox's RRD for the range as served, and the latest figures."""

    timeframe = serializers.ChoiceField(choices=TIMEFRAMES)
    cf = serializers.ChoiceField(choices=CONSOLIDATIONS)
    step = serializers.IntegerField(help_text="Seconds between two points.")
    points = serializers.ListField(
        child=serializers.DictField(),
        help_text="Oldest first: time, cpu, maxcpu, mem, maxmem, memhost, disk, maxdisk, "
        "netin, netout, diskread, diskwrite (bytes/s), pressure*; a bucket without data "
        "has only `time`.",
    )
    latest = LatestFiguresSerializer()


class ContainerCreateSerializer(serializers.Serializer):
    hostname = serializers.CharField(
        max_length=63, help_text="One DNS label: lowercase letters, digits, hyphens."
    )
    template = serializers.CharField(max_length=32, help_text="Template name, e.g. debian-12.")
    site = serializers.CharField(
        max_length=32, required=False, help_text="Site slug (default: the only site)."
    )
    cores = serializers.IntegerField(required=False, min_value=1, max_value=MAX_CORES)
    memory_mib = serializers.IntegerField(required=False, min_value=1, max_value=MAX_MEMORY_MIB)
    swap_mib = serializers.IntegerField(required=False, min_value=0, max_value=MAX_SWAP_MIB)
    disk_gib = serializers.IntegerField(required=False, min_value=1, max_value=MAX_DISK_GIB)
    ssh_public_keys = serializers.CharField(required=False, allow_blank=True, max_length=20000)
    description = serializers.CharField(required=False, allow_blank=True, max_length=255)
    route_access = serializers.ChoiceField(
        choices=RouteAccess.choices,
        default=RouteAccess.USERS,
        help_text="Who may open the container's web address; changeable later on its route.",
    )


class ContainerExtendSerializer(serializers.Serializer):
    days = serializers.IntegerField(
        min_value=1,
        max_value=3650,
        help_text="Move the expiry this many days later (from now if it has passed).",
    )


class ContainerResizeSerializer(serializers.Serializer):
    cores = serializers.IntegerField(required=False, min_value=1, max_value=MAX_CORES)
    memory_mib = serializers.IntegerField(required=False, min_value=1, max_value=MAX_MEMORY_MIB)
    swap_mib = serializers.IntegerField(required=False, min_value=0, max_value=MAX_SWAP_MIB)
    disk_gib = serializers.IntegerField(required=False, min_value=1, max_value=MAX_DISK_GIB)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # Only resources change here. A hostname is fixed for the container's life (its
        # route, DNS name and CT keep it), so {"hostname": ...} is refused, not ignored.
        others = sorted(str(k) for k in self.initial_data if k not in self.fields)
        if others:
            raise serializers.ValidationError(
                {
                    name: "cannot be changed; only cores, memory_mib, swap_mib and disk_gib can"
                    for name in others[:10]
                }
            )
        return attrs


class AcceptedSerializer(serializers.Serializer):
    """202 Accepted: the job doing the work (poll it at `Location`) and the container."""

    job = JobSerializer()
    container = ContainerSerializer()
