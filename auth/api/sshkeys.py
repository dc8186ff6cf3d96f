"""The SSH keys of the caller's profile over the API (portalctl's `keys`): the same
services as the profile page (auth/sshkeys.py), so the same checks and audit."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from auth import selectors, sshkeys
from auth.models import SshKey
from portal.actors import acting_user
from portal.api.exceptions import ErrorSerializer
from portal.errors import ValidationFailed

from .serializers import SshKeySerializer

ERRORS = {code: OpenApiResponse(ErrorSerializer) for code in (400, 401, 403, 404, 409, 429)}
READ_ERRORS = {code: OpenApiResponse(ErrorSerializer) for code in (401, 403, 404, 429)}


class SshKeyCreateSerializer(serializers.Serializer):
    key = serializers.CharField(
        max_length=20000, help_text="One OpenSSH public key line (ssh-ed25519 AAAA... comment)."
    )
    name = serializers.CharField(
        max_length=100, required=False, allow_blank=True, help_text="Default: the key's comment."
    )


@extend_schema_view(
    list=extend_schema(
        summary="The SSH keys of your profile",
        responses={200: SshKeySerializer(many=True), **READ_ERRORS},
    ),
    retrieve=extend_schema(
        summary="One of your SSH keys", responses={200: SshKeySerializer, **READ_ERRORS}
    ),
)
class SshKeyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = SshKeySerializer
    queryset = SshKey.objects.none()
    ordering = ("created_at",)

    def get_queryset(self) -> QuerySet[SshKey]:
        return selectors.ssh_keys_of(acting_user(self.request))

    @extend_schema(
        summary="Add a public key to your profile",
        request=SshKeyCreateSerializer,
        responses={201: SshKeySerializer, **ERRORS},
    )
    def create(self, request: Request) -> Response:
        ser = SshKeyCreateSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        user = acting_user(request)
        try:
            row = sshkeys.ssh_key_add(
                user=user,
                key=ser.validated_data["key"],
                name=ser.validated_data.get("name", ""),
                actor=user,
            )
        except ValidationFailed as exc:  # the key checks name the create form's field
            raise ValidationFailed(exc.message, code=exc.code, field="key") from exc
        return Response(SshKeySerializer(row).data, status=201)

    @extend_schema(
        summary="Remove a key from your profile", request=None, responses={204: None, **ERRORS}
    )
    def destroy(self, request: Request, pk: str | None = None) -> Response:
        key = self.get_object()
        sshkeys.ssh_key_remove(key=key, actor=acting_user(request))
        return Response(status=204)
