"""The warm pool's rows: a target per template and node, and the members made for it."""

from __future__ import annotations

from typing import ClassVar

from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import Q

from networking.models import Node, Site

# The Proxmox tag a pool member carries beside the managed tag (PROXMOX_MANAGED_TAG): the
# reconciler does not take it for an orphan while a member row holds its VMID.
POOL_TAG = "portal-pool"
# The most members one template may keep on one node.
MAX_POOL_TARGET = 50


class PoolTarget(models.Model):
    """How many stopped members a template keeps ready on a node (0: the pool is off)."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="pool_targets")
    template = models.ForeignKey(
        "containers.Template", on_delete=models.CASCADE, related_name="pool_targets"
    )
    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="pool_targets")
    target = models.PositiveSmallIntegerField(
        default=0,
        validators=[MaxValueValidator(MAX_POOL_TARGET)],
        help_text="Stopped containers kept ready on this node (0: off).",
    )
    # Claims (a create took a member) and misses (it found none and made one): the hit rate.
    hits = models.PositiveIntegerField(default=0)
    misses = models.PositiveIntegerField(default=0)
    # The last refill pass over this pool: when, how long one member took, what stopped it.
    refilled_at = models.DateTimeField(null=True, blank=True)
    last_build_seconds = models.FloatField(null=True, blank=True)
    skipped_reason = models.CharField(max_length=300, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering: ClassVar = ["site", "template", "node"]
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["template", "node"], name="containers_pooltarget_one_per_template_node"
            ),
            models.CheckConstraint(
                condition=Q(target__lte=MAX_POOL_TARGET), name="containers_pooltarget_target_max"
            ),
        ]

    def __str__(self) -> str:
        return f"pool of {self.template} on {self.node}"


class PoolMemberState(models.TextChoices):
    CREATING = "creating", "Being made"  # its VMID is reserved; the create task may be running
    READY = "ready", "Ready"  # stopped on Proxmox, waiting for a claim
    CLAIMED = "claimed", "Claimed"  # a create took it; the row goes once its job is done
    BROKEN = "broken", "To remove"  # a create or destroy failed part-way: removed next pass


class PoolMember(models.Model):
    """A stopped CT made ahead for a template on a node. It holds a VMID (no container may
    take it) but no name, address or MAC: those come with the claim."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="pool_members")
    template = models.ForeignKey(
        "containers.Template", on_delete=models.PROTECT, related_name="pool_members"
    )
    node = models.ForeignKey(Node, on_delete=models.PROTECT, related_name="pool_members")
    vmid = models.PositiveIntegerField()
    volid = models.CharField(max_length=255, help_text="The template's volume it was made from.")
    # The resources it was made with (the template's defaults then): they count on the node.
    cores = models.PositiveSmallIntegerField()
    memory_mib = models.PositiveIntegerField()
    disk_gib = models.PositiveIntegerField()
    state = models.CharField(
        max_length=16, choices=PoolMemberState.choices, default=PoolMemberState.CREATING
    )
    message = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    build_seconds = models.FloatField(null=True, blank=True)

    class Meta:
        ordering: ClassVar = ["site", "vmid"]
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["site", "vmid"], name="containers_poolmember_unique_vmid_per_site"
            ),
            models.CheckConstraint(
                condition=Q(state__in=PoolMemberState.values),
                name="containers_poolmember_state_valid",
            ),
        ]
        indexes: ClassVar = [
            models.Index(fields=["template", "node", "state"], name="containers_poolmember_idx"),
        ]

    def __str__(self) -> str:
        return f"pool CT {self.vmid} ({self.template} on {self.node})"

    @property
    def hostname(self) -> str:
        """Its neutral name on Proxmox until a claim gives it the user's."""
        return f"pool-{self.vmid}"
