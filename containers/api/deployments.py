"""/api/v1/deployments/ (LaunchPad, docs/launchpad.md): thin; the services decide."""

from __future__ import annotations

import json
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
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from containers import deploy_logs, deployments, streams
from containers import deployment_selectors as selectors
from containers.deploy_names import deployment_name
from containers.models import Deployment
from portal.actors import acting_user
from portal.api.renderers import EventStreamRenderer
from portal.errors import ErrorCode, ValidationFailed

from .serializers import JobSerializer
from .views import ERRORS, READ_ERRORS


class DeploymentSerializer(serializers.ModelSerializer):
    pull_request = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()
    ssh = serializers.SerializerMethodField()
    container = serializers.SerializerMethodField()
    job = serializers.SerializerMethodField()
    env_names = serializers.SerializerMethodField()
    owner = serializers.SerializerMethodField()

    class Meta:
        model = Deployment
        fields = (
            "name",
            "owner",
            "repository",
            "ref",
            "pull_request",
            "commit",
            "serving_commit",
            "state",
            "state_message",
            "url",
            "ssh",
            "container",
            "job",
            "app",
            "env_names",
            "ttl_days",
            "expires_at",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields

    def get_pull_request(self, d: Deployment) -> int | None:
        return selectors.pull_request_number(d)

    def get_url(self, d: Deployment) -> str:
        return selectors.deployment_url(d)

    def get_ssh(self, d: Deployment) -> str:
        c = d.container
        return c.ssh_command if c is not None and c.is_live else ""

    def get_container(self, d: Deployment) -> dict[str, Any] | None:
        c = d.container
        if c is None:
            return None
        return {"id": c.pk, "hostname": c.hostname, "vmid": c.vmid, "status": c.status}

    def get_job(self, d: Deployment) -> dict[str, Any] | None:
        job = self.context.get("job", selectors.deployment_latest_job(d))
        return JobSerializer(job).data if job else None

    def get_env_names(self, d: Deployment) -> list[str]:
        return selectors.deployment_env_names(d)  # the names only: never a value

    def get_owner(self, d: Deployment) -> str:
        return str(d.owner.get_username())


class DeploySpecSerializer(serializers.Serializer):
    repository = serializers.RegexField(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", max_length=201)
    ref = serializers.CharField(max_length=255)
    commit = serializers.CharField(max_length=40)
    committed_at = serializers.DateTimeField(required=False, allow_null=True)
    template = serializers.CharField(required=False, allow_blank=True, max_length=100)
    app = serializers.DictField(required=False)
    env = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False)
    ttl_days = serializers.IntegerField(required=False, allow_null=True)


class DestroyAnswerSerializer(serializers.Serializer):
    job = JobSerializer()


class ExtendSerializer(serializers.Serializer):
    days = serializers.IntegerField()


@extend_schema_view(
    list=extend_schema(
        summary="Your deployments (staff: all)",
        responses={200: DeploymentSerializer(many=True), **READ_ERRORS},
    ),
    retrieve=extend_schema(
        summary="A deployment", responses={200: DeploymentSerializer, **READ_ERRORS}
    ),
)
class DeploymentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = DeploymentSerializer
    queryset = Deployment.objects.none()
    lookup_field = "name"
    lookup_value_regex = "[a-z0-9-]{1,63}"
    parser_classes = (MultiPartParser, FormParser, JSONParser)
    filterset_fields = ("repository", "ref", "state")
    ordering = ("repository", "ref", "id")

    def get_queryset(self) -> QuerySet[Deployment]:
        removed = self.request.query_params.get("state") == "removed"
        return selectors.deployments_visible_to(self.request.user, include_removed=removed)

    def get_object(self) -> Deployment:
        return selectors.deployment_get(self.request.user, self.kwargs["name"])

    @extend_schema(
        summary="Deploy a commit (create or update the deployment of a branch or PR)",
        request={"multipart/form-data": OpenApiTypes.OBJECT},
        responses={200: DeploymentSerializer, 201: DeploymentSerializer, **ERRORS},
    )
    def create(self, request: Request) -> Response:
        return self._put(request, name=None)

    @extend_schema(
        summary="Deploy a commit to the deployment {name}",
        request={"multipart/form-data": OpenApiTypes.OBJECT},
        responses={200: DeploymentSerializer, 201: DeploymentSerializer, **ERRORS},
    )
    def update(self, request: Request, name: str | None = None) -> Response:
        return self._put(request, name=name)

    def _put(self, request: Request, *, name: str | None) -> Response:
        spec = _spec(request)
        if name is not None and name != deployment_name(spec["repository"], spec["ref"]):
            raise ValidationFailed(
                f"the deployment of {spec['repository']} at {spec['ref']} is named "
                f"'{deployment_name(spec['repository'], spec['ref'])}', not '{name}'",
                code=ErrorCode.NAME_MISMATCH,
                field="name",
            )
        source = request.FILES.get("source")
        if source is None:
            raise ValidationFailed(
                "the push needs its source: a part 'source' with the commit's tree "
                "(git archive --format=tar.gz COMMIT)",
                field="source",
            )
        result = deployments.deployment_put(
            actor=acting_user(request),
            repository=spec["repository"],
            ref=spec["ref"],
            commit=spec["commit"],
            committed_at=spec.get("committed_at"),
            template=selectors.template_for_deploy(spec.get("template")),
            source=source,
            app=spec.get("app") or {},
            env=spec.get("env") or {},
            ttl_days=spec.get("ttl_days"),
        )
        deployment = selectors.deployment_get(request.user, result.deployment.name)
        context = {"job": result.job} if result.outcome != "superseded" else {}
        body = {**DeploymentSerializer(deployment, context=context).data}
        body["outcome"] = result.outcome
        code = status.HTTP_201_CREATED if result.outcome == "created" else status.HTTP_200_OK
        location = reverse("api:deployment-detail", args=[deployment.name])
        return Response(body, status=code, headers={"Location": location})

    @extend_schema(
        summary="Remove a deployment and its container",
        responses={
            202: DestroyAnswerSerializer,
            204: OpenApiResponse(description="It had no container left: removed at once."),
            **ERRORS,
        },
    )
    def destroy(self, request: Request, name: str | None = None) -> Response:
        job = deployments.deployment_destroy(
            deployment=self.get_object(), actor=acting_user(request)
        )
        if job is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response({"job": JobSerializer(job).data}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="Move a deployment's expiry",
        request=ExtendSerializer,
        responses={200: DeploymentSerializer, **ERRORS},
    )
    @action(detail=True, methods=["post"])
    def extend(self, request: Request, name: str | None = None) -> Response:
        ser = ExtendSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        deployment = deployments.deployment_extend(
            deployment=self.get_object(),
            actor=acting_user(request),
            days=ser.validated_data["days"],
        )
        return Response(DeploymentSerializer(deployment).data)

    @extend_schema(
        summary="The app's runtime log (its unit's journal); follow=1 streams it as SSE",
        parameters=[
            OpenApiParameter("lines", OpenApiTypes.INT, description="How many lines (200)."),
            OpenApiParameter("follow", OpenApiTypes.BOOL, description="Stream as SSE."),
        ],
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT), **READ_ERRORS},
    )
    @action(detail=True, methods=["get"], pagination_class=None, filterset_fields=())
    def logs(self, request: Request, name: str | None = None) -> Any:
        deployment = self.get_object()
        try:
            lines = int(request.query_params.get("lines", "200"))
        except ValueError:
            raise ValidationFailed("lines is a number", field="lines") from None
        if request.query_params.get("follow") not in ("1", "true"):
            return Response({"lines": deploy_logs.app_log(deployment, lines=lines)})
        lease = streams.stream_acquire(user_id=acting_user(request).pk)
        response = StreamingHttpResponse(
            streams.LeasedStream(deploy_logs.app_log_events(deployment, lines=lines), lease),
            content_type="text/event-stream",
        )
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
        return response

    def get_renderers(self) -> list[Any]:
        if getattr(self, "action", None) == "logs" and self.request.query_params.get("follow"):
            return [EventStreamRenderer()]
        return super().get_renderers()


def _spec(request: Request) -> dict[str, Any]:
    """The push's `spec` part: a JSON object (or the JSON body itself, without a source)."""
    raw = request.data.get("spec")
    if raw is None:
        raise ValidationFailed("the push needs a part 'spec' (a JSON object)", field="spec")
    try:
        data = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError as exc:
        raise ValidationFailed(f"spec is not JSON: {exc}", field="spec") from None
    if not isinstance(data, dict):
        raise ValidationFailed("spec is a JSON object", field="spec")
    ser = DeploySpecSerializer(data=data)
    ser.is_valid(raise_exception=True)
    return dict(ser.validated_data)
