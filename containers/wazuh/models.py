"""A site's Wazuh manager and the agents the portal enrolled (imported by containers.models,
so the containers app owns them).

Invariants:
- One `WazuhManager` per site at most; the feature is on for a site only while its manager
  row exists and is `enabled` (containers.wazuh.selectors.manager_for_site).
- Secrets (the API password, the registration password or enrolment token, the indexer
  password) are EncryptedTextFields: encrypted at rest, never shown, logged or returned.
- A `WazuhAgent` row exists only for an agent the portal enrolled: the sweep removes
  nothing else (the hypervisors' agents, the manager's own 000, anyone's by hand).
  Its `name` is `names.agent_name_for(container)`, unique per site, and it outlives its
  container (`container` SET_NULL) until the manager has forgotten it (`removed`).
"""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from networking.models import Site
from portal.crypto import EncryptedTextField

from .names import DEFAULT_GROUP, validate_wazuh_groups

API_PORT = 55000
AGENT_PORT = 1514  # agent data (TCP)
V4_REGISTRATION_PORT = 1515  # authd, password enrolment (4.x)
V5_ENROLMENT_PORT = 1517  # enrolment token over HTTPS (5.x)
INDEXER_PORT = 9200
PORT_VALIDATORS = [MinValueValidator(1), MaxValueValidator(65535)]


class EnrolmentMode(models.TextChoices):
    """How a new container's agent registers with the manager."""

    V4_PASSWORD = "v4_password", "Wazuh 4.x: authd password on port 1515"
    V5_TOKEN = "v5_token", "Wazuh 5.x: enrolment token over HTTPS on port 1517"


# The registration port each mode uses when the manager row leaves it empty.
DEFAULT_REGISTRATION_PORT = {
    EnrolmentMode.V4_PASSWORD: V4_REGISTRATION_PORT,
    EnrolmentMode.V5_TOKEN: V5_ENROLMENT_PORT,
}


class WazuhManager(models.Model):
    """The Wazuh manager (API, enrolment) and indexer (alerts) one site reports to."""

    site = models.OneToOneField(Site, on_delete=models.CASCADE, related_name="wazuh")
    enabled = models.BooleanField(
        default=True, help_text="Off: the portal neither enrols, polls nor mentions Wazuh here."
    )
    # -- the manager's API
    api_url = models.URLField(help_text=f"https://host:{API_PORT} of the manager's API.")
    api_user = models.CharField(
        max_length=128, help_text="An API user allowed to read and delete agents."
    )
    api_password = EncryptedTextField(blank=True, help_text="Stored encrypted; never shown again.")
    ca_bundle = models.CharField(
        max_length=500,
        blank=True,
        help_text="Path of a CA bundle to verify the API's and the indexer's certificates "
        "(empty: the system's CAs).",
    )
    verify_tls = models.BooleanField(default=True)
    # -- enrolment (what a new container's agent is given)
    registration_address = models.CharField(
        max_length=253,
        blank=True,
        help_text="Host the agents enrol with and report to (empty: the API URL's host).",
    )
    registration_port = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=PORT_VALIDATORS,
        help_text=f"Empty: {V4_REGISTRATION_PORT} for 4.x, {V5_ENROLMENT_PORT} for 5.x.",
    )
    agent_port = models.PositiveIntegerField(
        default=AGENT_PORT, validators=PORT_VALIDATORS, help_text="Agent data port (TCP)."
    )
    enrolment_mode = models.CharField(
        max_length=16, choices=EnrolmentMode.choices, default=EnrolmentMode.V4_PASSWORD
    )
    enrolment_secret = EncryptedTextField(
        blank=True,
        help_text="The registration password (4.x) or the enrolment token (5.x); stored "
        "encrypted, never shown again.",
    )
    default_group = models.CharField(
        max_length=255,
        default=DEFAULT_GROUP,
        validators=[validate_wazuh_groups],
        help_text="Agent group(s), comma-separated; a template may override it.",
    )
    # -- the indexer (alerts)
    indexer_url = models.URLField(
        blank=True,
        help_text=f"https://host:{INDEXER_PORT} of the indexer (empty: no alerts shown).",
    )
    indexer_user = models.CharField(max_length=128, blank=True)
    indexer_password = EncryptedTextField(
        blank=True, help_text="Stored encrypted; never shown again."
    )
    # -- status
    disconnect_alert_minutes = models.PositiveIntegerField(
        default=30,
        validators=[MinValueValidator(1)],
        help_text="Raise an alert once a container's agent has been disconnected this long.",
    )
    # -- the status poll's record (containers/wazuh/poll.py writes these; nobody edits them)
    polled_at = models.DateTimeField(
        null=True, blank=True, help_text="When the status poll last listed the agents."
    )
    poll_error = models.CharField(
        max_length=500, blank=True, help_text="Why the last poll failed (empty: it did not)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "Wazuh manager"
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=Q(enrolment_mode__in=EnrolmentMode.values),
                name="containers_wazuhmanager_enrolment_mode_valid",
            ),
            models.CheckConstraint(
                condition=Q(agent_port__gte=1, agent_port__lte=65535)
                & (
                    Q(registration_port__isnull=True)
                    | Q(registration_port__gte=1, registration_port__lte=65535)
                ),
                name="containers_wazuhmanager_ports_valid",
            ),
            models.CheckConstraint(
                condition=Q(disconnect_alert_minutes__gte=1),
                name="containers_wazuhmanager_threshold_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"Wazuh manager of {self.site.slug}" if self.site_id else "Wazuh manager"

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if urlsplit(self.api_url or "").scheme not in ("", "https"):
            errors["api_url"] = "the manager's API is served over HTTPS"
        if self.indexer_url and urlsplit(self.indexer_url).scheme != "https":
            errors["indexer_url"] = "the indexer is served over HTTPS"
        if self.indexer_url and not self.indexer_user:
            errors["indexer_user"] = "an indexer URL needs a user"
        if errors:
            raise ValidationError(errors)

    @property
    def registration_host(self) -> str:
        """Where agents enrol and report: the registration address, or the API's host."""
        return self.registration_address or (urlsplit(self.api_url).hostname or "")

    @property
    def enrolment_port(self) -> int:
        return (
            self.registration_port or DEFAULT_REGISTRATION_PORT[EnrolmentMode(self.enrolment_mode)]
        )

    @property
    def has_indexer(self) -> bool:
        return bool(self.indexer_url)

    @property
    def tls_verify(self) -> bool | str:
        """What `requests` takes as `verify`: the CA bundle's path, True, or False."""
        if not self.verify_tls:
            return False
        return self.ca_bundle or True


class AgentStatus(models.TextChoices):
    """The manager's four connection states, then the portal's own: an agent the manager
    does not list, and the two of an agent's end."""

    PENDING = "pending", "pending"
    ACTIVE = "active", "active"
    DISCONNECTED = "disconnected", "disconnected"
    NEVER_CONNECTED = "never_connected", "never connected"
    # The last poll did not find it on the manager: not enrolled yet, or deleted there by
    # someone else. The portal deletes nothing for it; `last_error` says since when.
    MISSING = "missing", "not on the manager"
    # The container is gone and the manager could not be told yet: the sweep removes it.
    REMOVAL_PENDING = "removal_pending", "removal pending"
    REMOVED = "removed", "removed"


# The states the manager reports (GET /agents `status`); the others are the portal's own.
MANAGER_STATUSES = frozenset(
    {AgentStatus.PENDING, AgentStatus.ACTIVE, AgentStatus.DISCONNECTED, AgentStatus.NEVER_CONNECTED}
)
# The states the status poll keeps up to date (the end's two belong to removal and sweep).
POLLED_STATUSES = MANAGER_STATUSES | {AgentStatus.MISSING}


class WazuhAgent(models.Model):
    """The portal's record of an agent it enrolled: which container it watches, and its
    state as last read from the manager."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="wazuh_agents")
    container = models.ForeignKey(
        "containers.Container",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="wazuh_agents",
    )
    name = models.CharField(max_length=128, help_text="names.agent_name_for(container)")
    agent_id = models.CharField(
        max_length=16, blank=True, help_text='The manager\'s id ("001"); blank until known.'
    )
    status = models.CharField(
        max_length=16, choices=AgentStatus.choices, default=AgentStatus.PENDING
    )
    last_keepalive = models.DateTimeField(null=True, blank=True)
    version = models.CharField(max_length=64, blank=True)
    groups = models.JSONField(default=list, blank=True)
    enrolled_at = models.DateTimeField(default=timezone.now)
    status_updated_at = models.DateTimeField(null=True, blank=True)
    removed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)

    class Meta:
        verbose_name = "Wazuh agent"
        ordering: ClassVar = ["site", "name"]
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["site", "name"], name="containers_wazuhagent_unique_name_per_site"
            ),
            models.UniqueConstraint(
                fields=["container"],
                condition=Q(container__isnull=False) & ~Q(status=AgentStatus.REMOVED),
                name="containers_wazuhagent_one_live_per_container",
            ),
            models.CheckConstraint(
                condition=Q(status__in=AgentStatus.values),
                name="containers_wazuhagent_status_valid",
            ),
        ]
        indexes: ClassVar = [
            models.Index(fields=["site", "status"], name="wazuhagent_site_status"),
        ]

    def __str__(self) -> str:
        return self.name


class WazuhSweepRun(models.Model):
    """One run of the sweep of a site's leftover agents (containers.wazuh.sweep): what it
    removed, what it kept and why, and what could not be asked. Written by the sweep alone.

    `removed` items: `{"name", "agent_id", "container", "hostname", "vmid", "how"}` (`how`:
    `deleted` from the manager, or `gone`: the manager no longer had it). `kept` items:
    `{"name", "agent_id", "container", "hostname", "vmid", "reason"}`. `errors`: one line per
    party that did not answer (the manager, Proxmox, a node)."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="wazuh_sweeps")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Who asked (empty: the daily beat task).",
    )
    dry_run = models.BooleanField(default=False)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    removed = models.JSONField(default=list, blank=True)
    kept = models.JSONField(default=list, blank=True)
    errors = models.JSONField(default=list, blank=True)
    live = models.PositiveIntegerField(
        default=0, help_text="Agents of live containers: not the sweep's to judge."
    )
    summary = models.CharField(max_length=500, blank=True)

    class Meta:
        verbose_name = "Wazuh sweep report"
        ordering: ClassVar = ["-started_at"]
        indexes: ClassVar = [
            models.Index(fields=["site", "-started_at"], name="wazuhsweep_site_started"),
        ]

    def __str__(self) -> str:
        when = timezone.localtime(self.started_at).strftime("%Y-%m-%d %H:%M")
        return f"Wazuh sweep of {self.site.slug} at {when}{' (dry run)' if self.dry_run else ''}"


class WazuhNodeAgent(models.Model):
    """A hypervisor's own agent as the status poll last saw it, matched by the node's name.

    The portal did not enrol it and never removes it: this is a reading, not a record of
    ownership (the sweep looks at `WazuhAgent` only). The poll writes it from the same
    `GET /agents` list as the containers' agents; `missing` means the list had no agent of
    the node's name."""

    node = models.OneToOneField(
        "networking.Node", primary_key=True, on_delete=models.CASCADE, related_name="wazuh_agent"
    )
    name = models.CharField(max_length=128, help_text="The agent name looked for (the node's).")
    agent_id = models.CharField(max_length=16, blank=True)
    status = models.CharField(
        max_length=16, choices=AgentStatus.choices, default=AgentStatus.MISSING
    )
    last_keepalive = models.DateTimeField(null=True, blank=True)
    version = models.CharField(max_length=64, blank=True)
    groups = models.JSONField(default=list, blank=True)
    status_updated_at = models.DateTimeField()

    class Meta:
        verbose_name = "Wazuh agent of a node"
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=Q(status__in=sorted(POLLED_STATUSES)),
                name="containers_wazuhnodeagent_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"agent {self.name} ({self.status})"
