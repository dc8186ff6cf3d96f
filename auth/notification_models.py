"""Notification preferences and webhooks (app `accounts`; imported by auth/models.py).

A user receives every kind unless they muted it (`muted_kinds`): the default is all on,
with no row at all. A webhook belongs to a user (their notifications) or to a site (the
notifications about its containers); its URL and secret are encrypted at rest.
"""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q

from portal.crypto import EncryptedTextField


class NotificationKind(models.TextChoices):
    JOB_FAILED = "job_failed", "Failed jobs"
    EXPIRY = "expiry", "Container expiry"
    RESOURCE_REQUEST = "resource_request", "Resource request outcomes"
    ALERT = "alert", "Alerts"
    RECONCILE = "reconcile", "Reconciler findings (operators)"
    WAZUH_SWEEP = "wazuh_sweep", "Wazuh agent sweep (operators)"


class NotificationPreference(models.Model):
    """The kinds a user does not want; no row means they want all of them."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_preference"
    )
    muted_kinds = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"notification preferences of {self.user_id}"


class Webhook(models.Model):
    """Where a JSON copy of notifications is POSTed, signed with HMAC-SHA256 of `secret`."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="webhook",
    )
    site = models.OneToOneField(
        "networking.Site", null=True, blank=True, on_delete=models.CASCADE, related_name="webhook"
    )
    url = EncryptedTextField("URL", help_text="Stored encrypted.")
    secret = EncryptedTextField(blank=True, help_text="Stored encrypted; never shown again.")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=Q(user__isnull=False, site__isnull=True)
                | Q(user__isnull=True, site__isnull=False),
                name="accounts_webhook_user_or_site",
            ),
        ]

    def __str__(self) -> str:
        return f"webhook of {'user ' + str(self.user_id) if self.user_id else 'site ' + str(self.site_id)}"
