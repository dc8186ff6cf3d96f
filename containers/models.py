"""Templates, containers, and the jobs that change them."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from enum import StrEnum
from typing import ClassVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from networking.allocation import IPv4Number
from networking.models import Node, PortProtocol, Site
from networking.validators import validate_hostname, validate_slug
from portal.crypto import EncryptedTextField
from portal.fastload import FastLoad

from .wazuh.names import validate_wazuh_groups

# Hard limits, whatever a template allows (Proxmox's own bounds where it has them).
MAX_CORES = 128
MIN_MEMORY_MIB = 64
MAX_MEMORY_MIB = 1024 * 1024
MAX_SWAP_MIB = 1024 * 1024
MIN_DISK_GIB = 1
MAX_DISK_GIB = 16 * 1024


class Template(models.Model):
    """An OS template a site offers, with the resources a container of it may have."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="templates")
    name = models.CharField(
        max_length=32, validators=[validate_slug], help_text="Short name, e.g. debian-12."
    )
    display_name = models.CharField(max_length=100)
    volid = models.CharField(
        max_length=255,
        help_text="Proxmox volume id, e.g. local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
    )
    os_type = models.CharField(max_length=32, blank=True)
    default_cores = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(MAX_CORES)]
    )
    default_memory_mib = models.PositiveIntegerField(default=1024)
    default_swap_mib = models.PositiveIntegerField(default=512)
    default_disk_gib = models.PositiveIntegerField(default=8)
    max_cores = models.PositiveSmallIntegerField(
        default=4, validators=[MinValueValidator(1), MaxValueValidator(MAX_CORES)]
    )
    max_memory_mib = models.PositiveIntegerField(default=8192)
    max_swap_mib = models.PositiveIntegerField(default=4096)
    max_disk_gib = models.PositiveIntegerField(default=64)
    enabled = models.BooleanField(default=True)
    container_ttl_days = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="A new container of it expires after this many days (empty: the site's default).",
    )
    wazuh_group = models.CharField(
        max_length=255,
        blank=True,
        validators=[validate_wazuh_groups],
        help_text="Wazuh agent group(s) of its containers, comma-separated (empty: the "
        "site's default group).",
    )

    class Meta:
        ordering: ClassVar = ["site", "name"]
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["site", "name"], name="containers_template_unique_name_per_site"
            ),
            models.CheckConstraint(
                condition=Q(default_cores__lte=models.F("max_cores"))
                & Q(default_memory_mib__lte=models.F("max_memory_mib"))
                & Q(default_swap_mib__lte=models.F("max_swap_mib"))
                & Q(default_disk_gib__lte=models.F("max_disk_gib")),
                name="containers_template_defaults_within_max",
            ),
        ]

    def __str__(self) -> str:
        return self.display_name or self.name

    def clean(self) -> None:
        if not self.volid or ":" not in self.volid or any(c in self.volid for c in " \n\t,;"):
            raise ValidationError({"volid": "a Proxmox volume id such as local:vztmpl/<file>"})
        for res in ("cores", "memory_mib", "swap_mib", "disk_gib"):
            if getattr(self, f"default_{res}") > getattr(self, f"max_{res}"):
                raise ValidationError({f"default_{res}": "the default is above the maximum"})


class ContainerStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PROVISIONING = "provisioning", "Provisioning"
    RUNNING = "running", "Running"
    STOPPED = "stopped", "Stopped"
    ERROR = "error", "Error"
    DELETING = "deleting", "Deleting"
    DELETED = "deleted", "Deleted"


# The only status changes services may make (anything else is a bug or a race).
CONTAINER_TRANSITIONS: dict[str, frozenset[str]] = {
    ContainerStatus.PENDING: frozenset({"provisioning", "deleting", "deleted", "error"}),
    ContainerStatus.PROVISIONING: frozenset({"running", "stopped", "error", "deleting", "deleted"}),
    ContainerStatus.RUNNING: frozenset({"stopped", "error", "deleting"}),
    ContainerStatus.STOPPED: frozenset({"running", "error", "deleting"}),
    ContainerStatus.ERROR: frozenset({"running", "stopped", "deleting", "provisioning"}),
    ContainerStatus.DELETING: frozenset({"deleted", "error"}),
    ContainerStatus.DELETED: frozenset(),
}

# Proxmox's power state of a CT, as the portal's status (any other is not a power state).
POWER_STATES: dict[str, str] = {
    "running": ContainerStatus.RUNNING,
    "stopped": ContainerStatus.STOPPED,
}

# Rows in these states hold their VMID, hostname, IP and MAC; deleted rows are history.
LIVE = ~Q(status=ContainerStatus.DELETED)


class Container(FastLoad, models.Model):
    """An LXC container a user owns. Deleted rows stay for history and free their names."""

    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="containers")
    node = models.ForeignKey(Node, on_delete=models.PROTECT, related_name="containers")
    vmid = models.PositiveIntegerField()
    hostname = models.CharField(max_length=63, validators=[validate_hostname])
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="containers"
    )
    template = models.ForeignKey(Template, on_delete=models.PROTECT, related_name="containers")
    cores = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(MAX_CORES)]
    )
    memory_mib = models.PositiveIntegerField(
        validators=[MinValueValidator(MIN_MEMORY_MIB), MaxValueValidator(MAX_MEMORY_MIB)]
    )
    swap_mib = models.PositiveIntegerField(validators=[MaxValueValidator(MAX_SWAP_MIB)])
    disk_gib = models.PositiveIntegerField(
        validators=[MinValueValidator(MIN_DISK_GIB), MaxValueValidator(MAX_DISK_GIB)]
    )
    ip = models.GenericIPAddressField(protocol="IPv4")
    mac = models.CharField(max_length=17)
    ssh_public_keys = models.TextField(blank=True)
    description = models.CharField(max_length=255, blank=True)
    status = models.CharField(
        max_length=16, choices=ContainerStatus.choices, default=ContainerStatus.PENDING
    )
    status_message = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    running_since = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    # A create that failed stays on its owner's dashboard until they dismiss it.
    dismissed_at = models.DateTimeField(null=True, blank=True)
    # Expiry (containers.container_expiry): stopped at `expires_at`, deleted a grace period
    # later unless extended; its owner is warned once per expiry (`expiry_warned_at`).
    expires_at = models.DateTimeField(null=True, blank=True)
    expiry_warned_at = models.DateTimeField(null=True, blank=True)
    expiry_stopped_at = models.DateTimeField(
        null=True, blank=True, help_text="when the expiry sweep stopped it"
    )

    class Meta:
        ordering: ClassVar = ["site", "vmid"]
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["site", "vmid"],
                condition=LIVE,
                name="containers_container_unique_vmid_per_site",
            ),
            models.UniqueConstraint(
                fields=["site", "hostname"],
                condition=LIVE,
                name="containers_container_unique_hostname_per_site",
            ),
            models.UniqueConstraint(
                fields=["site", "ip"],
                condition=LIVE,
                name="containers_container_unique_ip_per_site",
            ),
            models.UniqueConstraint(
                fields=["site", "mac"],
                condition=LIVE,
                name="containers_container_unique_mac_per_site",
            ),
            models.CheckConstraint(
                condition=Q(status__in=ContainerStatus.values),
                name="containers_container_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(cores__gte=1), name="containers_container_cores_positive"
            ),
        ]
        indexes: ClassVar = [
            models.Index(fields=["owner", "status"], name="containers_owner_status_idx"),
            models.Index(fields=["status"], name="containers_status_idx"),
            models.Index(
                fields=["expires_at"],
                condition=Q(expires_at__isnull=False),
                name="containers_expires_at_idx",
            ),
            # The live addresses as numbers, so that the lowest free one is found by
            # counting in this index (networking.allocation), not by reading every row.
            models.Index(
                F("site"), IPv4Number("ip"), condition=LIVE, name="containers_live_ip_number_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.hostname} (CT {self.vmid})"

    @property
    def fqdn(self) -> str:
        return f"{self.hostname}.{self.site.domain}"

    @property
    def url(self) -> str:
        return self.site.app_url(self.hostname)

    @property
    def ssh_port(self) -> int | None:
        """The gateway's external port of the container's SSH mapping (None: none yet).

        Reads `port_mappings.all()`, so a list that prefetches `port_mappings` stays flat.
        """
        for mapping in self.port_mappings.all():
            if mapping.name == "ssh" and mapping.protocol == PortProtocol.TCP:
                return int(mapping.external_port)
        return None

    def ssh_command_for(self, username: str) -> str:
        """`ssh -p <port> <user>@<hostname>.<domain>` through the gateway, or "" without a port."""
        port = self.ssh_port
        return f"ssh -p {port} {username}@{self.fqdn}" if port else ""

    @property
    def ssh_command(self) -> str:
        """The owner's SSH command (the GUI shows each viewer their own login name)."""
        return self.ssh_command_for(self.owner.get_username())

    @property
    def is_live(self) -> bool:
        return self.status != ContainerStatus.DELETED

    @property
    def deletes_at(self) -> datetime | None:
        """When the expiry sweep deletes it, unless extended (None: it does not expire):
        the grace counts from the stop, which is at expiry or the first sweep after it."""
        start = self.expiry_stopped_at or self.expires_at
        if start is None:
            return None
        return start + timedelta(days=settings.CONTAINER_EXPIRY_GRACE_DAYS)


class JobKind(models.TextChoices):
    """The kinds the portal ships (each a class in containers/jobs/); more may register."""

    CREATE = "create", "Create"
    DELETE = "delete", "Delete"
    START = "start", "Start"
    STOP = "stop", "Stop"
    RESTART = "restart", "Restart"
    RESIZE = "resize", "Resize"
    ACCESS = "access", "Access"  # collaborators changed: directory group and Proxmox ACLs
    MEND = "mend", "Mend"  # the reconciler puts back the portal's values (or adopts a CT)
    DEPLOY = "deploy", "Deploy"  # LaunchPad: a commit into a deployment's container


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_JOB_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)


class StepState(StrEnum):
    """The state of one step of a job (`Job.steps[i]["state"]`); a step's function returns
    SKIPPED (or None: DONE)."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"


FINAL_JOB_STATUSES = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class Job(models.Model):
    """One piece of asynchronous work on a container; its id is also the Celery task id.

    Status changes only through the conditional updates in `containers.jobs`, so two
    workers can never both run it, and a final job never moves again.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # A registered kind (containers.jobs.kind): new kinds need no migration, so no choices.
    kind = models.CharField(max_length=16)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    container = models.ForeignKey(
        Container, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="jobs",
    )
    params = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)
    # [{"name", "title", "state": pending|running|done|failed|skipped, "started_at", "finished_at"}]
    steps = models.JSONField(default=list, blank=True)
    progress = models.PositiveSmallIntegerField(default=0, validators=[MaxValueValidator(100)])
    error_code = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    worker = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar = ["-created_at"]
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["container"],
                condition=Q(status__in=["queued", "running"]),
                name="containers_job_one_active_per_container",
            ),
            models.CheckConstraint(
                condition=Q(status__in=JobStatus.values), name="containers_job_status_valid"
            ),
        ]
        indexes: ClassVar = [
            models.Index(fields=["status", "heartbeat_at"], name="containers_job_status_hb_idx"),
            # /metrics counts the jobs finished within a window.
            models.Index(fields=["finished_at"], name="containers_job_finished_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} job {self.id} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_JOB_STATUSES

    def get_kind_display(self) -> str:
        return self.kind.replace("_", " ").capitalize()


class LogLevel(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    ERROR = "error", "Error"


class JobLogEntry(models.Model):
    """An append-only line of a job's log (ids increase, so `?after=<id>` resumes)."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="log_entries")
    # Set when the line is logged: the runner writes its lines in batches.
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    level = models.CharField(max_length=8, choices=LogLevel.choices, default=LogLevel.INFO)
    step = models.CharField(max_length=64, blank=True)
    message = models.TextField()

    class Meta:
        ordering: ClassVar = ["id"]
        verbose_name_plural = "job log entries"

    def __str__(self) -> str:
        return f"[{self.level}] {self.message[:60]}"


class IdempotencyKey(models.Model):
    """An `Idempotency-Key` a user sent with a create: a retried request gets the same job."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="idempotency_keys"
    )
    key = models.CharField(max_length=200)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of the request's parameters.")
    job = models.ForeignKey(Job, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["user", "key"], name="containers_idempotencykey_unique_per_user"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.key}"


class ReconcileRun(models.Model):
    """One comparison of a site's containers with Proxmox (`containers.reconciler`)."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="reconcile_runs")
    dry_run = models.BooleanField(default=False)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Empty: the periodic run.",
    )
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    nodes_checked = models.JSONField(default=list, blank=True)
    # {node: reason}: nothing on these nodes was judged.
    nodes_skipped = models.JSONField(default=dict, blank=True)
    counts = models.JSONField(default=dict, blank=True, help_text="Findings per kind.")
    summary = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering: ClassVar = ["-started_at"]
        indexes: ClassVar = [
            models.Index(fields=["site", "-started_at"], name="containers_reconcile_site_idx"),
        ]

    def __str__(self) -> str:
        return f"reconcile of {self.site} at {self.started_at:%Y-%m-%d %H:%M:%S}"


class FindingKind(models.TextChoices):
    UNREACHABLE = "unreachable", "Node not answering"
    STATUS = "status", "Status differs"
    DRIFT = "drift", "Config differs"
    MISSING = "missing", "Missing on Proxmox"
    ORPHAN = "orphan", "Orphan on Proxmox"
    LEAK = "leak", "Leaked allocation"
    UNSETTLED = "unsettled", "Failed create to settle"


class FindingAction(models.TextChoices):
    REPORTED = "reported", "Reported only"
    RECORDED = "recorded", "Proxmox's value recorded"
    CORRECTED = "corrected", "Portal's value put back"
    MARKED_ERROR = "marked_error", "Marked error"
    RELEASED = "released", "Released"
    WOULD = "would", "Dry run: would act"


class ReconcileFinding(models.Model):
    """One thing a reconcile run found, and what it did about it."""

    run = models.ForeignKey(ReconcileRun, on_delete=models.CASCADE, related_name="findings")
    kind = models.CharField(max_length=16, choices=FindingKind.choices)
    action = models.CharField(max_length=16, choices=FindingAction.choices)
    node = models.CharField(max_length=64, blank=True)
    vmid = models.PositiveIntegerField(null=True, blank=True)
    container = models.ForeignKey(
        Container, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    field = models.CharField(max_length=32, blank=True)
    portal_value = models.CharField(max_length=200, blank=True)
    proxmox_value = models.CharField(max_length=200, blank=True)
    message = models.CharField(max_length=500)
    # An operator's decision on an orphan: adopted or destroyed, by whom, when.
    resolution = models.CharField(max_length=300, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar = ["run", "id"]
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=Q(kind__in=FindingKind.values),
                name="containers_reconcilefinding_kind_valid",
            ),
            models.CheckConstraint(
                condition=Q(action__in=FindingAction.values),
                name="containers_reconcilefinding_action_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.message[:80]


class DeploymentState(models.TextChoices):
    QUEUED = "queued", "Queued"  # its container is being made
    DEPLOYING = "deploying", "Deploying"
    LIVE = "live", "Live"
    FAILED = "failed", "Failed"  # the last deploy failed; `serving_commit` may still serve
    REMOVING = "removing", "Removing"
    REMOVED = "removed", "Removed"


class Deployment(models.Model):
    """One branch or pull request of a repository, deployed into exactly one container
    (LaunchPad, issue #15). Removed rows stay for history and free their key."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="deployments"
    )
    repository = models.CharField(max_length=201, help_text="owner/name on GitHub")
    ref = models.CharField(max_length=255, help_text="the branch, or pr-<number>")
    # Its container's hostname, from containers.deploy_names: the key in the API and the GUI.
    name = models.CharField(max_length=63, db_index=True)
    container = models.ForeignKey(
        Container, null=True, on_delete=models.SET_NULL, related_name="deployments"
    )
    commit = models.CharField(max_length=40, help_text="the commit asked for last")
    committed_at = models.DateTimeField(
        null=True, blank=True, help_text="its commit time: an older push changes nothing"
    )
    serving_commit = models.CharField(max_length=40, blank=True)
    state = models.CharField(
        max_length=16, choices=DeploymentState.choices, default=DeploymentState.QUEUED
    )
    state_message = models.CharField(max_length=500, blank=True)
    # install, build and start commands, the HTTP port, the services (no secrets here).
    app = models.JSONField(default=dict, blank=True)
    env = EncryptedTextField(blank=True, help_text="JSON object; encrypted, never shown")
    expires_at = models.DateTimeField(null=True, blank=True)
    ttl_days = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="idle days before removal; each push starts them again"
    )
    warned_at = models.DateTimeField(
        null=True, blank=True, help_text="when its owner was told it expires soon"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering: ClassVar = ["repository", "ref"]
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["owner", "repository", "ref"],
                condition=~Q(state=DeploymentState.REMOVED),
                name="containers_deployment_one_per_ref",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.repository}@{self.ref}"


# The metrics' model lives beside the code that writes it; importing it here registers it.
from .metrics.models import ContainerAlert, ContainerSample  # noqa: E402, F401

# The warm pool's rows (containers/pool/): targets and the stopped members made for them.
from .pool.models import PoolMember, PoolTarget  # noqa: E402, F401

# The Wazuh models live beside their client and services (containers/wazuh/).
from .wazuh.models import (  # noqa: E402, F401
    WazuhAgent,
    WazuhManager,
    WazuhNodeAgent,
    WazuhSweepRun,
)
