"""Thin API views for identity: the current user, API tokens, resource requests, audit."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, permissions, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from auth import logins, selectors, two_factor
from auth import tokens as auth_tokens
from auth.models import ApiToken, AuditEntry, ResourceRequest
from containers import resource_requests
from containers import selectors as container_selectors
from containers.models import Container
from containers.selectors import container_get
from portal.actors import acting_user
from portal.api.exceptions import ErrorSerializer

from .permissions import TokenManagementPermission
from .serializers import (
    ApiTokenCreatedSerializer,
    ApiTokenCreateSerializer,
    ApiTokenSerializer,
    AuditEntrySerializer,
    DecisionSerializer,
    MeSerializer,
    ResourceRequestCreateSerializer,
    ResourceRequestSerializer,
    SshKeySerializer,
    TokenLoginSerializer,
)
from .throttling import LoginRateThrottle

ERRORS = {code: OpenApiResponse(ErrorSerializer) for code in (400, 401, 403, 404, 409, 429)}
READ_ERRORS = {code: OpenApiResponse(ErrorSerializer) for code in (401, 403, 404, 429)}


class TokenLoginView(APIView):
    """A token for a username and password: the CLI's `login`. No session, no CSRF."""

    authentication_classes = ()
    permission_classes = (permissions.AllowAny,)
    throttle_classes = (LoginRateThrottle,)

    @extend_schema(
        summary="Log in with a password: a new token, shown once",
        description="The same checks as the web login: a locked-out user and address is 403 "
        "`locked_out`, a wrong password 401 `authentication_failed`; an account with "
        "two-factor authentication needs `otp` (401 `otp_required`, or `otp_invalid` when "
        "wrong; `403 otp_setup_required` for staff who must set it up first). The token is scoped, always expires, and its creation is audited. "
        "Throttled per address (429).",
        request=TokenLoginSerializer,
        responses={201: ApiTokenCreatedSerializer, **ERRORS},
        auth=[],
    )
    def post(self, request: Request) -> Response:
        ser = TokenLoginSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        token, plaintext = logins.token_login(request=request._request, **ser.validated_data)
        return Response(
            ApiTokenCreatedSerializer(token, context={"plaintext": plaintext}).data, status=201
        )


class MeView(APIView):
    @extend_schema(
        summary="Who you are: identity, groups, quota usage and limits, SSH keys",
        responses={200: MeSerializer, **READ_ERRORS},
    )
    def get(self, request: Request) -> Response:
        user = acting_user(request)
        body = {
            "username": user.get_username(),
            "email": user.email,
            "full_name": user.get_full_name(),
            "is_staff": user.is_staff,
            "groups": sorted(user.groups.values_list("name", flat=True)),
            "quota": container_selectors.user_quota(user).as_dict(),
            "ssh_keys": SshKeySerializer(selectors.ssh_keys_of(user), many=True).data,
            "otp_enrolled": two_factor.otp_enrolled(user),
        }
        return Response(MeSerializer(body).data)


TOKEN_SEEN_BY_TOKEN = (
    "Called with a token (Bearer) rather than a session, this shows only that token itself."
)


@extend_schema_view(
    list=extend_schema(
        summary="Your API tokens (never their secrets)",
        description=TOKEN_SEEN_BY_TOKEN,
        responses={200: ApiTokenSerializer(many=True), **READ_ERRORS},
    ),
    retrieve=extend_schema(
        summary="One of your API tokens",
        description=TOKEN_SEEN_BY_TOKEN + " Another token is 403 `token_needs_session`.",
        responses={200: ApiTokenSerializer, **READ_ERRORS},
    ),
)
class ApiTokenViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = ApiTokenSerializer
    # Replaces TokenScopePermission here: token requests may only read and revoke themselves.
    permission_classes = [permissions.IsAuthenticated, TokenManagementPermission]
    queryset = ApiToken.objects.none()
    ordering = ("-created_at",)

    def get_queryset(self) -> QuerySet[ApiToken]:
        tokens = selectors.tokens_of(acting_user(self.request))
        caller = self.request.auth
        if isinstance(caller, ApiToken) and self.action == "list":
            return tokens.filter(pk=caller.pk)
        return tokens

    @extend_schema(
        summary="Create a token: the response is the only time it is shown",
        description="Only from a signed-in session (the profile page, or this API with the "
        "session cookie and CSRF token). A request authenticated by a token gets 403 "
        "`token_needs_session`, whatever that token's scope: a token never mints another, "
        "so no token can outlive or outrank the one that made it.",
        request=ApiTokenCreateSerializer,
        responses={201: ApiTokenCreatedSerializer, **ERRORS},
    )
    def create(self, request: Request) -> Response:
        ser = ApiTokenCreateSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        user = acting_user(request)
        token, plaintext = auth_tokens.token_create(user=user, actor=user, **ser.validated_data)
        return Response(
            ApiTokenCreatedSerializer(token, context={"plaintext": plaintext}).data, status=201
        )

    @extend_schema(
        summary="Revoke a token",
        description="From a session: any of your tokens. With a token: only that token "
        "itself (a CLI's logout; a read-only token may too); another is 403 "
        "`token_needs_session`.",
        request=None,
        responses={200: ApiTokenSerializer, **ERRORS},
    )
    def destroy(self, request: Request, pk: str | None = None) -> Response:
        token = auth_tokens.token_revoke(token=self.get_object(), actor=acting_user(request))
        return Response(ApiTokenSerializer(token).data)


@extend_schema_view(
    list=extend_schema(
        summary="Your resource requests (staff: everyone's)",
        responses={200: ResourceRequestSerializer(many=True), **READ_ERRORS},
    ),
    retrieve=extend_schema(
        summary="A resource request and its outcome",
        responses={200: ResourceRequestSerializer, **READ_ERRORS},
    ),
)
class ResourceRequestViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    serializer_class = ResourceRequestSerializer
    queryset = ResourceRequest.objects.none()
    filterset_fields = ("status", "kind")
    ordering = ("-created_at",)

    def get_queryset(self) -> QuerySet[ResourceRequest]:
        return selectors.resource_requests_visible_to(self.request.user)

    def get_object(self) -> ResourceRequest:
        return selectors.resource_request_get(self.request.user, self.kwargs["pk"])

    @extend_schema(
        summary="Ask for more quota, or for a container to grow",
        request=ResourceRequestCreateSerializer,
        responses={201: ResourceRequestSerializer, **ERRORS},
    )
    def create(self, request: Request) -> Response:
        ser = ResourceRequestCreateSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        data = dict(ser.validated_data)
        user = acting_user(request)
        container: Container | None = None
        if data.get("container") is not None:
            container = container_get(user, pk=data.pop("container"))
        row = resource_requests.resource_request_create(user=user, container=container, **data)
        return Response(ResourceRequestSerializer(row).data, status=201)

    @extend_schema(
        summary="Approve (staff): the override or resize applies itself",
        request=DecisionSerializer,
        responses={200: ResourceRequestSerializer, **ERRORS},
    )
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str | None = None) -> Response:
        ser = DecisionSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        row = resource_requests.resource_request_approve(
            request=self.get_object(), actor=acting_user(request), note=ser.validated_data["note"]
        )
        return Response(ResourceRequestSerializer(row).data)

    @extend_schema(
        summary="Deny (staff)",
        request=DecisionSerializer,
        responses={200: ResourceRequestSerializer, **ERRORS},
    )
    @action(detail=True, methods=["post"])
    def deny(self, request: Request, pk: str | None = None) -> Response:
        ser = DecisionSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        row = resource_requests.resource_request_deny(
            request=self.get_object(), actor=acting_user(request), note=ser.validated_data["note"]
        )
        return Response(ResourceRequestSerializer(row).data)


@extend_schema_view(
    list=extend_schema(
        summary="The audit log (staff)",
        responses={200: AuditEntrySerializer(many=True), **READ_ERRORS},
    ),
    retrieve=extend_schema(
        summary="An audit entry (staff)", responses={200: AuditEntrySerializer, **READ_ERRORS}
    ),
)
class AuditEntryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = AuditEntrySerializer
    permission_classes = [permissions.IsAdminUser]
    queryset = AuditEntry.objects.none()
    filterset_fields = ("action", "object_type", "object_id", "actor_name")
    ordering = ("-created_at",)

    def get_queryset(self) -> QuerySet[AuditEntry]:
        return selectors.audit_entries()
