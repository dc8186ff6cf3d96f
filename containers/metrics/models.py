"""The latest sample of each container (imported by containers.models, so the app owns it)."""

from __future__ import annotations

from django.db import models


class ContainerSample(models.Model):
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
