"""Thin viewsets: validate input, call a service, answer. Long work answers 202 with the job."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import Any

from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.fields import SkipField
from rest_framework.request import Request
from rest_framework.response import Response

from auth.api.serializers import CollaboratorListSerializer, CollaboratorSerializer
from auth.selectors import collaborator_usernames
from containers import idempotent, selectors, services, streams
from containers.collaborators import collaborator_add, collaborator_remove
from containers.container_expiry import container_extend
from containers.metrics import history
from containers.metrics.history import CONSOLIDATIONS, TIMEFRAMES
from containers.models import ACTIVE_JOB_STATUSES, Container, Job, Template
from containers.validation import container_create_check
from networking import publishing as network
from networking.api.serializers import (
    PortMappingCreateSerializer,
    PortMappingSerializer,
    RouteCreateSerializer,
    RouteSerializer,
    RouteUpdateSerializer,
)
from networking.models import RouteAccess, Site
from portal.actors import acting_user
from portal.api.base import parse_id
from portal.api.exceptions import ErrorSerializer
from portal.api.pagination import PageOrCursorPagination
from portal.api.renderers import EventStreamRenderer
from portal.collector import gc_paused
from portal.errors import FieldErrors, NotFound, ValidationFailed

from .filters import ContainerFilter, JobFilter
from .security import ContainerSecurityMixin
from .serializers import (
    AcceptedSerializer,
    ContainerCreateSerializer,
    ContainerExtendSerializer,
    ContainerMetricsSerializer,
    ContainerResizeSerializer,
    ContainerSampleSerializer,
    ContainerSerializer,
    JobLogEntrySerializer,
    JobSerializer,
    MetricsQuerySerializer,
    TemplateSerializer,
)

ERRORS = {
    400: OpenApiResponse(ErrorSerializer, description="Invalid input (field errors in `detail`)."),
    401: OpenApiResponse(ErrorSerializer, description="Not authenticated."),
    403: OpenApiResponse(
        ErrorSerializer, description="Authenticated but not allowed (e.g. a read-only token)."
    ),
    404: OpenApiResponse(ErrorSerializer, description="No such object, or not yours."),
    409: OpenApiResponse(
        ErrorSerializer, description="Conflict: name taken, quota, exhausted, invalid state."
    ),
    429: OpenApiResponse(ErrorSerializer, description="Throttled."),
}
READ_ERRORS = {k: v for k, v in ERRORS.items() if k in (401, 403, 404, 429)}


def accepted(job: Job, *, status: int = 202) -> Response:
    job = Job.objects.select_related(
        "container__site", "container__node", "container__owner", "container__template", "actor"
    ).get(pk=job.pk)
    container = job.container
    if container is not None:
        container.active_jobs = [job] if job.status in ACTIVE_JOB_STATUSES else []  # type: ignore[attr-defined]
    body = {"job": JobSerializer(job).data, "container": ContainerSerializer(container).data}
    return Response(
        body, status=status, headers={"Location": reverse("api:job-detail", args=[job.pk])}
    )


def _resolve_template(data: dict[str, Any]) -> tuple[Site, Template]:
    slug = data.get("site")
    if slug:
        site = Site.objects.filter(slug=slug).first()
        if site is None:
            raise ValidationFailed(f"no site '{slug}'", field="site")
    else:
        sites = list(Site.objects.all()[:2])
        if len(sites) != 1:
            raise ValidationFailed("there are several sites: say which with 'site'", field="site")
        site = sites[0]
    template = Template.objects.filter(site=site, name=data["template"]).first()
    if template is None:
        names = (
            ", ".join(site.templates.filter(enabled=True).values_list("name", flat=True)) or "none"
        )
        raise ValidationFailed(
            f"no template '{data['template']}' on {site.slug} (available: {names})",
            field="template",
        )
    return site, template


def _parsed(ser: serializers.Serializer) -> dict[str, Any]:
    """The fields of an invalid input that are valid on their own."""
    out: dict[str, Any] = {}
    for name, field in ser.fields.items():
        if name in ser.errors:
            continue
        try:
            out[name] = field.run_validation(field.get_value(ser.initial_data))
        except (serializers.ValidationError, SkipField):
            continue
    return out


@extend_schema_view(
    list=extend_schema(
        summary="List containers you own or collaborate on (staff: all)",
        description="By site and VMID unless `ordering` says otherwise (ties end in site and "
        "VMID). Numbered pages (`page`, with `count`), or a cursor to walk the whole list "
        "(`cursor=` for the first page, then follow `next` until it is null): every page "
        "of a walk costs the same, and it sees each container that exists throughout "
        "exactly once while others are created or deleted. Ordered by `cpu` or `mem`, "
        "which change with every metrics poll, a walk may see a container twice or miss it.",
        responses={200: ContainerSerializer(many=True), **READ_ERRORS},
    ),
    retrieve=extend_schema(
        summary="A container", responses={200: ContainerSerializer, **READ_ERRORS}
    ),
)
class ContainerViewSet(
    ContainerSecurityMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = ContainerSerializer
    filterset_class = ContainerFilter
    # cpu and mem: the latest sample's (containers without one come last when descending).
    ordering_fields = ("vmid", "hostname", "created_at", "status", "cpu", "mem")
    # (site, vmid) follows the partial unique index, so a page is read in index order;
    # unique among live containers, it ends every ordering, and a cursor walks it.
    ordering = ("site_id", "vmid")
    cursor_key = ("site_id", "vmid")
    pagination_class = PageOrCursorPagination
    queryset = Container.objects.none()

    def get_queryset(self) -> QuerySet[Container]:
        return selectors.api_containers(self.request.user, many=self.action == "list")

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        # DRF's list, with the collector paused while a page of up to 1,000 is built, and its
        # rows let go before it resumes: freed by reference counting, not scanned at once.
        with gc_paused():
            page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
            if page is None:  # never: the list always has pages
                return super().list(request, *args, **kwargs)
            serializer = self.get_serializer(page, many=True)
            results = builtins.list(serializer.data)
            page.clear()  # the serializers keep the list they were given: empty it
        return self.get_paginated_response(results)

    def paginate_queryset(self, queryset: QuerySet[Any, Any]) -> builtins.list[Any] | None:
        # A page's shared rows, active jobs and open alerts: a query apiece, after it is read.
        page = super().paginate_queryset(queryset)
        return None if page is None else selectors.containers_page(page)

    @extend_schema(
        summary="Create a container",
        request=ContainerCreateSerializer,
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                description="A retried request with the same key gets the same job.",
            )
        ],
        responses={202: AcceptedSerializer, **ERRORS},
    )
    def create(self, request: Request) -> Response:
        ser = ContainerCreateSerializer(data=request.data)
        valid = ser.is_valid()
        if not valid and not isinstance(ser.initial_data, Mapping):
            raise serializers.ValidationError(ser.errors)
        data = dict(ser.validated_data) if valid else _parsed(ser)
        errors = FieldErrors()
        template: Template | None = None
        if "template" in data:
            with errors.collect():
                _, template = _resolve_template(data)
        kwargs: dict[str, Any] = {
            "hostname": data.get("hostname", ""),
            "template": template,
            "site": template.site if template else None,
            "cores": data.get("cores"),
            "memory_mib": data.get("memory_mib"),
            "swap_mib": data.get("swap_mib"),
            "disk_gib": data.get("disk_gib"),
            "ssh_public_keys": data.get("ssh_public_keys", ""),
            "route_access": data.get("route_access", RouteAccess.USERS),
        }
        if not valid or errors:
            # Something is wrong already: say what else is, so every error comes at once.
            refused = dict(ser.errors) if not valid else {}
            with errors.collect(besides={*refused, *errors.fields}):
                container_create_check(owner=acting_user(request), **kwargs)
            if not refused:
                errors.raise_if_any()
            raise serializers.ValidationError({**refused, **errors.fields})
        kwargs.update(description=data.get("description", ""), actor=request.user)
        key = request.headers.get("Idempotency-Key")
        if key is not None:
            job, _ = idempotent.container_create_idempotent(
                key=key, owner=acting_user(request), **kwargs
            )
        else:
            job = services.container_create(owner=acting_user(request), **kwargs)
        return accepted(job)

    @extend_schema(
        summary="Change a container's resources (disk grows only)",
        request=ContainerResizeSerializer,
        responses={202: AcceptedSerializer, **ERRORS},
    )
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        container = self.get_object()
        ser = ContainerResizeSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        return accepted(
            services.container_resize(
                container=container, actor=acting_user(request), **ser.validated_data
            )
        )

    @extend_schema(
        summary="Delete a container", request=None, responses={202: AcceptedSerializer, **ERRORS}
    )
    def destroy(self, request: Request, pk: str | None = None) -> Response:
        return accepted(
            services.container_delete(container=self.get_object(), actor=acting_user(request))
        )

    @extend_schema(
        summary="Start a container", request=None, responses={202: AcceptedSerializer, **ERRORS}
    )
    @action(detail=True, methods=["post"])
    def start(self, request: Request, pk: str | None = None) -> Response:
        return accepted(
            services.container_start(container=self.get_object(), actor=acting_user(request))
        )

    @extend_schema(
        summary="Shut a container down", request=None, responses={202: AcceptedSerializer, **ERRORS}
    )
    @action(detail=True, methods=["post"])
    def stop(self, request: Request, pk: str | None = None) -> Response:
        return accepted(
            services.container_stop(container=self.get_object(), actor=acting_user(request))
        )

    @extend_schema(
        summary="Restart a container", request=None, responses={202: AcceptedSerializer, **ERRORS}
    )
    @action(detail=True, methods=["post"])
    def restart(self, request: Request, pk: str | None = None) -> Response:
        return accepted(
            services.container_restart(container=self.get_object(), actor=acting_user(request))
        )

    @extend_schema(
        summary="Extend a container's expiry (owner or staff, within policy)",
        description="An owner may extend to at most CONTAINER_EXTEND_MAX_DAYS from now "
        "(400 `extend_beyond_policy`); a container without expiry is 409 `no_expiry`. "
        "A container the expiry stopped stays stopped: start it again.",
        request=ContainerExtendSerializer,
        responses={200: ContainerSerializer, **ERRORS},
    )
    @action(detail=True, methods=["post"])
    def extend(self, request: Request, pk: str | None = None) -> Response:
        container = self.get_object()
        ser = ContainerExtendSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        container_extend(
            container=container, actor=acting_user(request), days=ser.validated_data["days"]
        )
        return Response(ContainerSerializer(self.get_object()).data)

    @extend_schema(
        methods=["GET"],
        summary="A container's collaborators",
        request=None,
        responses={200: CollaboratorListSerializer, **READ_ERRORS},
    )
    @extend_schema(
        methods=["POST"],
        summary="Add a collaborator (owner or staff); answers 202 with the access job",
        request=CollaboratorSerializer,
        responses={
            202: AcceptedSerializer,
            **ERRORS,
            503: OpenApiResponse(ErrorSerializer, description="The directory is not answering."),
        },
    )
    @action(detail=True, methods=["get", "post"])
    def collaborators(self, request: Request, pk: str | None = None) -> Response:
        container = self.get_object()
        if request.method == "GET":
            return Response({"collaborators": collaborator_usernames(container)})
        ser = CollaboratorSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        return accepted(
            collaborator_add(
                container=container,
                username=ser.validated_data["username"],
                actor=acting_user(request),
            )
        )

    @extend_schema(
        summary="Remove a collaborator (owner or staff); answers 202 with the access job",
        request=None,
        responses={202: AcceptedSerializer, **ERRORS},
    )
    @action(detail=True, methods=["delete"], url_path=r"collaborators/(?P<username>[^/]+)")
    def remove_collaborator(
        self, request: Request, pk: str | None = None, username: str = ""
    ) -> Response:
        container = self.get_object()
        ser = CollaboratorSerializer(data={"username": username})  # as for an add: no NUL, ≤150
        ser.is_valid(raise_exception=True)
        return accepted(
            collaborator_remove(
                container=container,
                username=ser.validated_data["username"],
                actor=acting_user(request),
            )
        )

    @extend_schema(
        summary="A container's history (Proxmox's RRD) and latest figures",
        parameters=[
            OpenApiParameter(
                "timeframe", OpenApiTypes.STR, enum=TIMEFRAMES, description="Default hour."
            ),
            OpenApiParameter(
                "cf", OpenApiTypes.STR, enum=CONSOLIDATIONS, description="Default AVERAGE."
            ),
        ],
        responses={
            200: ContainerMetricsSerializer,
            400: ERRORS[400],
            **READ_ERRORS,
            503: OpenApiResponse(ErrorSerializer, description="Proxmox is not answering."),
        },
    )
    @action(detail=True, methods=["get"], pagination_class=None, filterset_class=None)
    def metrics(self, request: Request, pk: str | None = None) -> Response:
        container = self.get_object()
        query = MetricsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        timeframe, cf = query.validated_data["timeframe"], query.validated_data["cf"]
        found = history.container_history(container, timeframe=timeframe, cf=cf)
        sample = getattr(container, "sample", None)
        latest: dict[str, Any] = (
            dict(ContainerSampleSerializer(sample).data)
            if sample is not None
            else dict.fromkeys(ContainerSampleSerializer.Meta.fields)
        )
        swap = history.container_swap(container)  # None: Proxmox did not say
        latest["swap"] = swap["swap"] if swap else None
        latest["maxswap"] = swap["maxswap"] if swap else None
        return Response({"timeframe": timeframe, "cf": cf, **found, "latest": latest})

    # -- routes and ports (the gateway publishes changes on its next apply) ----------------
    @extend_schema(
        methods=["GET"],
        summary="A container's HTTP routes",
        request=None,
        responses={200: RouteSerializer(many=True), **READ_ERRORS},
    )
    @extend_schema(
        methods=["POST"],
        summary="Add an HTTP service at <name>-<hostname> (owner or staff)",
        request=RouteCreateSerializer,
        responses={201: RouteSerializer, **ERRORS},
    )
    @action(detail=True, methods=["get", "post"], pagination_class=None, filterset_class=None)
    def routes(self, request: Request, pk: str | None = None) -> Response:
        container = self.get_object()
        if request.method == "GET":
            return Response(
                RouteSerializer(
                    container.routes.select_related("site").order_by("id"), many=True
                ).data
            )
        ser = RouteCreateSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        route = network.route_add(
            container=container, actor=acting_user(request), **ser.validated_data
        )
        return Response(RouteSerializer(route).data, status=201)

    @extend_schema(
        methods=["PATCH"],
        summary="Change a route's port, protocol, access or enabled (owner or staff)",
        request=RouteUpdateSerializer,
        responses={200: RouteSerializer, **ERRORS},
    )
    @extend_schema(
        methods=["DELETE"],
        summary="Remove a route (not the default one: disable that)",
        request=None,
        responses={204: None, **ERRORS},
    )
    @action(
        detail=True,
        methods=["patch", "delete"],
        url_path=r"routes/(?P<route_id>[0-9]+)",
        pagination_class=None,
        filterset_class=None,
    )
    def route_detail(self, request: Request, pk: str | None = None, route_id: str = "") -> Response:
        container = self.get_object()
        route = container.routes.select_related("site", "container").filter(pk=route_id).first()
        if route is None:
            raise NotFound("no such route")
        if request.method == "DELETE":
            network.route_delete(route=route, actor=acting_user(request))
            return Response(status=204)
        ser = RouteUpdateSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        route = network.route_update(route=route, actor=acting_user(request), **ser.validated_data)
        return Response(RouteSerializer(route).data)

    @extend_schema(
        methods=["GET"],
        summary="A container's published TCP/UDP ports",
        request=None,
        responses={200: PortMappingSerializer(many=True), **READ_ERRORS},
    )
    @extend_schema(
        methods=["POST"],
        summary="Publish one more port on the gateway (owner or staff)",
        request=PortMappingCreateSerializer,
        responses={201: PortMappingSerializer, **ERRORS},
    )
    @action(detail=True, methods=["get", "post"], pagination_class=None, filterset_class=None)
    def ports(self, request: Request, pk: str | None = None) -> Response:
        container = self.get_object()
        if request.method == "GET":
            return Response(
                PortMappingSerializer(container.port_mappings.order_by("id"), many=True).data
            )
        ser = PortMappingCreateSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        mapping = network.port_mapping_add(
            container=container, actor=acting_user(request), **ser.validated_data
        )
        return Response(PortMappingSerializer(mapping).data, status=201)

    @extend_schema(
        summary="Unpublish a port (not the SSH port)", request=None, responses={204: None, **ERRORS}
    )
    @action(
        detail=True,
        methods=["delete"],
        url_path=r"ports/(?P<port_id>[0-9]+)",
        pagination_class=None,
        filterset_class=None,
    )
    def port_detail(self, request: Request, pk: str | None = None, port_id: str = "") -> Response:
        container = self.get_object()
        mapping = container.port_mappings.select_related("container").filter(pk=port_id).first()
        if mapping is None:
            raise NotFound("no such port")
        network.port_mapping_delete(mapping=mapping, actor=acting_user(request))
        return Response(status=204)


@extend_schema_view(
    list=extend_schema(
        summary="List jobs of your containers (staff: all)",
        responses={200: JobSerializer(many=True), **READ_ERRORS},
    ),
    retrieve=extend_schema(
        summary="A job with its steps", responses={200: JobSerializer, **READ_ERRORS}
    ),
)
class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = JobSerializer
    filterset_class = JobFilter
    ordering_fields = ("created_at", "finished_at")
    ordering = ("-created_at",)
    queryset = Job.objects.none()

    def get_queryset(self) -> QuerySet[Job]:
        return selectors.jobs_visible_to(self.request.user)

    def get_object(self) -> Job:
        return selectors.job_get(self.request.user, self.kwargs["pk"])

    @extend_schema(
        summary="A job's log, oldest first",
        parameters=[
            OpenApiParameter(
                "after", OpenApiTypes.INT, description="Only entries with a larger id."
            )
        ],
        responses={200: JobLogEntrySerializer(many=True), **READ_ERRORS},
    )
    @action(detail=True, methods=["get"], pagination_class=None, filterset_class=None)
    def log(self, request: Request, pk: str | None = None) -> Response:
        job = self.get_object()
        after = parse_id(request.query_params.get("after", "0"))
        if after is None:
            raise ValidationFailed("after must be an entry id (an integer)", field="after")
        entries = selectors.job_log(job, after=after)[:1000]
        return Response(JobLogEntrySerializer(entries, many=True).data)

    @extend_schema(
        summary="A job's progress as Server-Sent Events (resumes from Last-Event-ID)",
        parameters=[
            OpenApiParameter(
                "Last-Event-ID",
                OpenApiTypes.INT,
                OpenApiParameter.HEADER,
                description="Resume after this log entry id.",
            )
        ],
        responses={
            (200, "text/event-stream"): OpenApiResponse(
                OpenApiTypes.STR, description="event: log | job | end"
            ),
            # Errors are JSON here too (the renderer switches for them).
            **{(code, "application/json"): r for code, r in READ_ERRORS.items() if code != 429},
            (429, "application/json"): OpenApiResponse(
                ErrorSerializer,
                description="Throttled, or too many streams of yours are open (Retry-After).",
            ),
            (503, "application/json"): OpenApiResponse(
                ErrorSerializer, description="The server's stream threads are taken (Retry-After)."
            ),
        },
    )
    @action(
        detail=True,
        methods=["get"],
        renderer_classes=[EventStreamRenderer],
        pagination_class=None,
        filterset_class=None,
    )
    def events(self, request: Request, pk: str | None = None) -> StreamingHttpResponse:
        job = self.get_object()
        raw = request.headers.get("Last-Event-ID") or request.query_params.get("after") or "0"
        after = parse_id(raw) or 0
        lease = streams.stream_acquire(user_id=acting_user(request).pk)
        response = StreamingHttpResponse(
            streams.LeasedStream(streams.job_event_stream(job.pk, after=after), lease),
            content_type="text/event-stream",
        )
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # let NGINX pass events through at once
        return response


@extend_schema_view(
    list=extend_schema(
        summary="Templates you can create containers from",
        responses={200: TemplateSerializer(many=True), **READ_ERRORS},
    ),
    retrieve=extend_schema(
        summary="A template", responses={200: TemplateSerializer, **READ_ERRORS}
    ),
)
class TemplateViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = TemplateSerializer
    queryset = Template.objects.none()
    filterset_fields = ("enabled",)
    ordering = ("name",)

    def get_queryset(self) -> QuerySet[Template]:
        qs = Template.objects.select_related("site").order_by("site__slug", "name")
        return qs if self.request.user.is_staff else qs.filter(enabled=True)
