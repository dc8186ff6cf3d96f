"""Sites (one Proxmox cluster behind one gateway) and their nodes (hypervisors)."""

from __future__ import annotations

import ipaddress
from typing import ClassVar

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from portal.crypto import EncryptedTextField

from .validators import (
    parse_ranges,
    validate_dns_label,
    validate_domain,
    validate_ipv4_network,
    validate_ranges,
    validate_slug,
)


class Site(models.Model):
    """A Proxmox cluster, its subnet and its gateway (NGINX + dnsmasq)."""

    name = models.CharField(max_length=100)
    slug = models.CharField(max_length=32, unique=True, validators=[validate_slug])
    domain = models.CharField(
        max_length=253,
        validators=[validate_domain],
        help_text="Public domain: containers live at <hostname>.<domain>.",
    )
    internal_domain = models.CharField(
        max_length=253,
        validators=[validate_domain],
        help_text="Internal DNS domain served by dnsmasq.",
    )
    subnet = models.CharField(
        max_length=18, default="10.15.0.0/16", validators=[validate_ipv4_network]
    )
    gateway_ip = models.GenericIPAddressField(protocol="IPv4", default="10.15.0.1")
    reserved_ranges = models.TextField(
        default="10.15.0.0-10.15.0.255",
        blank=True,
        validators=[validate_ranges],
        help_text="Addresses never given to containers: CIDR, a-b or single addresses, one per line.",
    )
    dhcp_range_start = models.GenericIPAddressField(protocol="IPv4", default="10.15.255.0")
    dhcp_range_end = models.GenericIPAddressField(protocol="IPv4", default="10.15.255.254")
    dns_forwarders = models.CharField(
        max_length=200,
        blank=True,
        default="",
        help_text="Upstream DNS servers for dnsmasq, comma-separated.",
    )
    bridge = models.CharField(max_length=15, default="vmbr0", validators=[validate_dns_label])
    rootfs_storage = models.CharField(
        max_length=64, default="local-lvm", validators=[validate_dns_label]
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering: ClassVar = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.subnet)

    def excluded_ranges(self) -> list[tuple[int, int]]:
        """Ranges never allocated to containers: reserved ones and the dynamic DHCP pool."""
        ranges = parse_ranges(self.reserved_ranges)
        ranges.append(
            (
                int(ipaddress.IPv4Address(self.dhcp_range_start)),
                int(ipaddress.IPv4Address(self.dhcp_range_end)),
            )
        )
        gw = int(ipaddress.IPv4Address(self.gateway_ip))
        ranges.append((gw, gw))
        return ranges

    def clean(self) -> None:
        try:
            net = self.network
        except ValueError:
            return  # the field validator reports it
        for field in ("gateway_ip", "dhcp_range_start", "dhcp_range_end"):
            value = getattr(self, field)
            if value and ipaddress.IPv4Address(value) not in net:
                raise ValidationError({field: f"{value} is outside the subnet {net}"})
        if ipaddress.IPv4Address(self.dhcp_range_start) > ipaddress.IPv4Address(
            self.dhcp_range_end
        ):
            raise ValidationError({"dhcp_range_end": "the DHCP range ends before it starts"})


class NodeState(models.TextChoices):
    ACTIVE = "active", "Active"
    MAINTENANCE = "maintenance", "Maintenance"
    OFFLINE = "offline", "Offline"


class Node(models.Model):
    """A Proxmox VE hypervisor. Containers whose VMID mod N equals its slot live here."""

    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="nodes")
    name = models.CharField(
        max_length=63,
        validators=[validate_dns_label],
        help_text="The node name as Proxmox knows it.",
    )
    api_url = models.URLField(help_text="https://host:8006 of this node's API.")
    token_id = models.CharField(max_length=200, help_text="API token id: user@realm!name")
    token_secret = EncryptedTextField(blank=True, help_text="Stored encrypted; never shown again.")
    ca_bundle = models.CharField(
        max_length=500, blank=True, help_text="Path of a CA bundle to verify the API's certificate."
    )
    tls_fingerprint = models.CharField(
        max_length=95, blank=True, help_text="SHA-256 fingerprint of the API certificate (pinning)."
    )
    verify_tls = models.BooleanField(default=True)
    slot = models.PositiveSmallIntegerField(
        help_text="Placement slot: containers with VMID mod N = slot."
    )
    state = models.CharField(max_length=12, choices=NodeState.choices, default=NodeState.ACTIVE)
    # Capacity as last read from Proxmox (bytes, cores).
    max_cpu = models.PositiveIntegerField(null=True, blank=True)
    max_memory = models.BigIntegerField(null=True, blank=True)
    max_disk = models.BigIntegerField(null=True, blank=True)
    used_memory = models.BigIntegerField(null=True, blank=True)
    used_disk = models.BigIntegerField(null=True, blank=True)
    cpu_load = models.FloatField(null=True, blank=True)
    capacity_updated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering: ClassVar = ["site", "slot"]
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["site", "name"], name="networking_node_unique_name_per_site"
            ),
            models.UniqueConstraint(
                fields=["site", "slot"], name="networking_node_unique_slot_per_site"
            ),
            models.CheckConstraint(
                condition=Q(state__in=NodeState.values), name="networking_node_state_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.site.slug})"

    @property
    def is_active(self) -> bool:
        return self.state == NodeState.ACTIVE
