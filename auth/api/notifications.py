"""The caller's notification preferences and webhook over the API: the same services as
the profile page (auth/notifications.py), so the same checks and audit. The webhook's URL
and secret are never shown back: only its host, and whether a secret is set."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.contrib.auth.models import User
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from auth import notifications
from auth.notification_models import NotificationKind
from portal.actors import acting_user
from portal.api.exceptions import ErrorSerializer

ERRORS = {code: OpenApiResponse(ErrorSerializer) for code in (400, 401, 403, 429)}


class WebhookStateSerializer(serializers.Serializer):
    configured = serializers.BooleanField()
    host = serializers.CharField(allow_null=True)
    enabled = serializers.BooleanField()
    has_secret = serializers.BooleanField()


class NotificationSettingsSerializer(serializers.Serializer):
    kinds = serializers.DictField(
        child=serializers.BooleanField(),
        help_text="Each kind and whether you receive it: " + ", ".join(NotificationKind.values),
    )
    webhook = WebhookStateSerializer()


class NotificationSettingsUpdateSerializer(serializers.Serializer):
    kinds = serializers.DictField(
        child=serializers.BooleanField(), required=False, help_text="Kinds to turn on or off."
    )
    webhook_url = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=notifications.URL_MAX,
        help_text="https (or http to an allowed host); empty removes the webhook.",
    )
    webhook_secret = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=200,
        write_only=True,
        help_text="Key of the X-Portal-Signature HMAC; left out: unchanged.",
    )
    webhook_enabled = serializers.BooleanField(required=False)


def settings_of(user: User) -> dict[str, Any]:
    hook = notifications.webhook_of(user=user)
    return {
        "kinds": notifications.notification_kinds_of(user),
        "webhook": {
            "configured": hook is not None,
            "host": urlsplit(hook.url).hostname if hook else None,
            "enabled": bool(hook and hook.enabled),
            "has_secret": bool(hook and hook.secret),
        },
    }


class NotificationSettingsView(APIView):
    @extend_schema(
        summary="Which notifications you receive, and your webhook (never its URL or secret)",
        responses={200: NotificationSettingsSerializer, **ERRORS},
    )
    def get(self, request: Request) -> Response:
        return Response(NotificationSettingsSerializer(settings_of(acting_user(request))).data)

    @extend_schema(
        summary="Turn notification kinds on or off; set or remove your webhook",
        request=NotificationSettingsUpdateSerializer,
        responses={200: NotificationSettingsSerializer, **ERRORS},
    )
    def patch(self, request: Request) -> Response:
        user = acting_user(request)
        ser = NotificationSettingsUpdateSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        notifications.notification_settings_update(user=user, **ser.validated_data)
        return Response(NotificationSettingsSerializer(settings_of(user)).data)
