"""The latest sample of each container (imported by containers.models, so the app owns it)."""

from __future__ import annotations

from django.db import models

from portal.fastload import FastLoad


class ContainerSample(FastLoad, models.Model):
    """A container's figures from the last poll that saw it.

    Gauges are Proxmox's own (`cpu` a fraction of `cpus`, the container's cores; bytes for
    memory and disk). Rates are bytes/s between this poll and the one before, from
    Proxmox's counters, which are kept raw here for the next poll; a rate is null when it
    cannot be known (the first sample, a restart that reset the counters).
    """

    container = models.OneToOneField(
        "containers.Container", primary_key=True, on_delete=models.CASCADE, related_name="sample"
    )
    sampled_at = models.DateTimeField()
    # Proxmox's word for the CT's state at that poll (running, stopped...): a record, never
    # the portal's status (the reconciler owns that).
    pve_status = models.CharField(max_length=16, blank=True)
    cpu = models.FloatField(default=0.0)
    cpus = models.FloatField(default=0.0)
    mem = models.BigIntegerField(default=0)
    maxmem = models.BigIntegerField(default=0)
    disk = models.BigIntegerField(default=0)
    maxdisk = models.BigIntegerField(default=0)
    uptime = models.BigIntegerField(default=0)
    netin = models.BigIntegerField(default=0)
    netout = models.BigIntegerField(default=0)
    diskread = models.BigIntegerField(default=0)
    diskwrite = models.BigIntegerField(default=0)
    netin_rate = models.FloatField(null=True)
    netout_rate = models.FloatField(null=True)
    diskread_rate = models.FloatField(null=True)
    diskwrite_rate = models.FloatField(null=True)

    def __str__(self) -> str:
        return f"sample of {self.container_id} at {self.sampled_at:%Y-%m-%d %H:%M:%S}"


class AlertKind(models.TextChoices):
    MEMORY = "memory", "memory near its limit under pressure"
    CPU = "cpu", "CPU pinned at its cores"
    # containers/wazuh/alerts.py: its security agent silent too long (a site with Wazuh).
    WAZUH_AGENT = "wazuh_agent", "security agent disconnected"


class AlertState(models.TextChoices):
    """A raised alert's state as the API and the CLI name it (a pending row is never shown:
    nothing was said of it)."""

    OPEN = "open", "open"
    CLEARED = "cleared", "cleared"


# Raised and not cleared: what the container page, the API and /metrics call open.
OPEN_ALERT = models.Q(raised_at__isnull=False, cleared_at__isnull=True)


class ContainerAlert(models.Model):
    """A noisy-neighbour alert of one container and kind (containers/metrics/alerts.py).

    A row is pending while the condition holds for less than ALERT_FOR_MINUTES
    (`since` set, `raised_at` null), open once raised, and closed when `cleared_at` is set;
    a pending row whose condition ends is deleted (nothing was said). One row at most per
    container and kind is not closed: the partial unique constraint below.
    """

    container = models.ForeignKey(
        "containers.Container", on_delete=models.CASCADE, related_name="alerts"
    )
    kind = models.CharField(max_length=16, choices=AlertKind.choices)
    since = models.DateTimeField(help_text="When the condition was first seen, this time.")
    raised_at = models.DateTimeField(null=True, blank=True)
    cleared_at = models.DateTimeField(null=True, blank=True)
    value = models.FloatField(default=0.0, help_text="The last figure that was checked.")
    message = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-since"]
        constraints = [
            models.UniqueConstraint(
                fields=["container", "kind"],
                condition=models.Q(cleared_at__isnull=True),
                name="containeralert_one_active_per_container_kind",
            )
        ]
        indexes = [
            models.Index(
                fields=["kind"],
                condition=OPEN_ALERT,
                name="containeralert_open_kind",
            )
        ]

    def __str__(self) -> str:
        state = "open" if self.is_open else ("cleared" if self.cleared_at else "pending")
        return f"{self.kind} alert of {self.container_id} ({state})"

    @property
    def is_open(self) -> bool:
        return self.raised_at is not None and self.cleared_at is None
