"""Sites (one Proxmox cluster behind one gateway) and their nodes (hypervisors)."""

from __future__ import annotations

import ipaddress
from typing import ClassVar

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q

from portal.crypto import EncryptedTextField

from .validators import (
    MAX_PORT,
    MIN_PUBLISHED_PORT,
    parse_ranges,
    validate_dns_label,
    validate_domain,
    validate_forwarders,
    validate_hostname,
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
        validators=[validate_forwarders],
        help_text="Upstream DNS servers for dnsmasq, comma-separated (IP or IP#port).",
    )
    bridge = models.CharField(max_length=15, default="vmbr0", validators=[validate_dns_label])
    rootfs_storage = models.CharField(
        max_length=64, default="local-lvm", validators=[validate_dns_label]
    )
    # Gateway ports (TCP and UDP) handed out to containers. The defaults hold 12,000 SSH
    # mappings and 10,768 others, above the well-known ports and below Linux's ephemeral
    # range (32768+), which the gateway's own outgoing connections use.
    ssh_port_min = models.PositiveIntegerField(default=10000)
    ssh_port_max = models.PositiveIntegerField(default=21999)
    service_port_min = models.PositiveIntegerField(default=22000)
    service_port_max = models.PositiveIntegerField(default=32767)
    # Where browsers reach the gateway's HTTPS server: part of every link to a container.
    public_port = models.PositiveIntegerField(
        "public HTTPS port",
        default=443,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_PORT)],
        help_text="The gateway's HTTPS port as browsers reach it; links to containers name "
        "it unless it is 443 (the demo's gateway listens on a high port).",
    )
    container_ttl_days = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="A new container expires after this many days unless its template says "
        "otherwise (empty: CONTAINER_DEFAULT_TTL_DAYS, or never).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering: ClassVar = ["name"]

    def __str__(self) -> str:
        return self.name

    def app_url(self, subdomain: str) -> str:
        """`https://<subdomain>.<domain>[:port]/`: how a browser opens a name on the gateway."""
        port = "" if self.public_port == 443 else f":{self.public_port}"
        return f"https://{subdomain}.{self.domain}{port}/"

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
        ranges = {
            "ssh": (self.ssh_port_min, self.ssh_port_max),
            "service": (self.service_port_min, self.service_port_max),
        }
        for kind, (lo, hi) in ranges.items():
            if not MIN_PUBLISHED_PORT <= lo <= hi <= MAX_PORT:
                raise ValidationError(
                    {
                        f"{kind}_port_max": f"the {kind} port range must lie within "
                        f"{MIN_PUBLISHED_PORT}-{MAX_PORT} and end after it starts"
                    }
                )
        (a_lo, a_hi), (b_lo, b_hi) = ranges.values()
        if a_lo <= b_hi and b_lo <= a_hi:
            raise ValidationError({"service_port_min": "the SSH and service port ranges overlap"})


# -- numbers handed out: VMIDs, addresses, gateway ports -------------------------------------------
class NumberKind(models.TextChoices):
    """What a free number is (ports: by protocol, as PortProtocol)."""

    VMID = "vmid", "VMID"
    IP = "ip", "IPv4 address"
    TCP = "tcp", "TCP port"
    UDP = "udp", "UDP port"


class FreeRange(models.Model):
    """Numbers first..last of a kind that no live row holds while a higher one is held:
    holes, the first to hand out again (networking.allocation). Written by the allocation
    and by what releases a number, in the transaction that does it; never shown."""

    # No foreign key in the database: a release inserts here outside the site's row lock,
    # and the key-share lock a foreign key takes on the site row would wait for an
    # allocation that holds the site and waits for the released container (a deadlock).
    site = models.ForeignKey(
        Site,
        on_delete=models.CASCADE,
        db_constraint=False,
        db_index=False,  # networking_freerange_first_idx leads with it
        related_name="free_ranges",
    )
    kind = models.CharField(max_length=8, choices=NumberKind.choices)
    first = models.BigIntegerField()
    last = models.BigIntegerField()

    class Meta:
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=Q(first__lte=F("last")), name="networking_freerange_first_le_last"
            ),
            models.CheckConstraint(
                condition=Q(kind__in=NumberKind.values), name="networking_freerange_kind_valid"
            ),
        ]
        indexes: ClassVar = [
            models.Index(
                fields=["site", "kind", "first", "id"], name="networking_freerange_first_idx"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.first}-{self.last} free on site {self.site_id}"


class AllocationMark(models.Model):
    """How far the allocation of a kind from `base` up has accounted for: every free
    number from `base` to `upto` is in a FreeRange."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="allocation_marks")
    kind = models.CharField(max_length=8, choices=NumberKind.choices)
    base = models.BigIntegerField()
    upto = models.BigIntegerField()

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["site", "kind", "base"], name="networking_allocationmark_unique"
            ),
            models.CheckConstraint(
                condition=Q(kind__in=NumberKind.values), name="networking_allocationmark_kind_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} from {self.base} accounted up to {self.upto} on site {self.site_id}"


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
    ip = models.GenericIPAddressField(
        protocol="IPv4",
        null=True,
        blank=True,
        help_text="Its address on the cluster subnet, published as <name>.<internal domain>. "
        "Empty: the API URL's host when that is an address.",
    )
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
    # Set by the portal's health checks (containers/health.py), never by hand: when the
    # node stopped answering and what it answered.
    offline_since = models.DateTimeField(null=True, blank=True, editable=False)
    offline_reason = models.CharField(max_length=300, blank=True, editable=False)
    # When the beat probe last had this node's answer (or silence): the age of `state`.
    probed_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Capacity and load as last read from the node's status (bytes, cores): by the beat
    # probe whenever the node answers, or by the admin's "read the capacity" action.
    max_cpu = models.PositiveIntegerField(null=True, blank=True)
    max_memory = models.BigIntegerField(null=True, blank=True)
    max_disk = models.BigIntegerField(null=True, blank=True)
    used_memory = models.BigIntegerField(null=True, blank=True)
    used_disk = models.BigIntegerField(null=True, blank=True)
    cpu_load = models.FloatField(
        null=True, blank=True, help_text="CPU use as a fraction of all the node's CPUs."
    )
    load_1 = models.FloatField(null=True, blank=True, help_text="Load average over 1 minute.")
    load_5 = models.FloatField(null=True, blank=True, help_text="Load average over 5 minutes.")
    load_15 = models.FloatField(null=True, blank=True, help_text="Load average over 15 minutes.")
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

    @property
    def published_ip(self) -> str | None:
        """The address dnsmasq publishes for this node: `ip`, or the API URL's host if it is one."""
        if self.ip:
            return str(self.ip)
        from urllib.parse import urlsplit

        try:
            return str(ipaddress.IPv4Address(urlsplit(self.api_url).hostname or ""))
        except ValueError:
            return None


# -- the gateway: HTTP routes, TCP/UDP port mappings, and what was applied ----------------------
class RouteProtocol(models.TextChoices):
    HTTP = "http", "HTTP"
    HTTPS = "https", "HTTPS"


class RouteAccess(models.TextChoices):
    PUBLIC = "public", "Anyone"
    USERS = "users", "Any logged-in portal user"
    OWNER = "owner", "The owner and collaborators"


class Route(models.Model):
    """An HTTP service of a container at https://<subdomain>.<site domain>/.

    A container's default route has an empty `name` and its hostname as subdomain;
    other services are `<name>-<hostname>`, still one DNS label under the site's
    wildcard certificate.
    """

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="routes")
    container = models.ForeignKey(
        "containers.Container", on_delete=models.CASCADE, related_name="routes"
    )
    name = models.CharField(
        max_length=63,
        blank=True,
        validators=[validate_dns_label],
        help_text="Service name; empty for the container's default route.",
    )
    subdomain = models.CharField(max_length=63, validators=[validate_hostname])
    backend_port = models.PositiveIntegerField(
        default=80, validators=[MinValueValidator(1), MaxValueValidator(MAX_PORT)]
    )
    protocol = models.CharField(
        max_length=5,
        choices=RouteProtocol.choices,
        default=RouteProtocol.HTTP,
        help_text="What the container speaks on the backend port.",
    )
    # Never open to anyone by default: the owner opens a route on purpose.
    access = models.CharField(max_length=8, choices=RouteAccess.choices, default=RouteAccess.USERS)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering: ClassVar = ["site", "subdomain"]
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["site", "subdomain"], name="networking_route_unique_subdomain_per_site"
            ),
            models.UniqueConstraint(
                fields=["container", "name"], name="networking_route_unique_name_per_container"
            ),
            models.CheckConstraint(
                condition=Q(protocol__in=RouteProtocol.values),
                name="networking_route_protocol_valid",
            ),
            models.CheckConstraint(
                condition=Q(access__in=RouteAccess.values), name="networking_route_access_valid"
            ),
            models.CheckConstraint(
                condition=Q(backend_port__gte=1, backend_port__lte=MAX_PORT),
                name="networking_route_backend_port_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.subdomain} -> :{self.backend_port}"


class PortProtocol(models.TextChoices):
    TCP = "tcp", "TCP"
    UDP = "udp", "UDP"


class PortMapping(models.Model):
    """A TCP or UDP port on the gateway forwarded to a port of a container."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="port_mappings")
    container = models.ForeignKey(
        "containers.Container", on_delete=models.CASCADE, related_name="port_mappings"
    )
    name = models.CharField(
        max_length=63, validators=[validate_dns_label], help_text="ssh, or the service's name."
    )
    protocol = models.CharField(
        max_length=3, choices=PortProtocol.choices, default=PortProtocol.TCP
    )
    external_port = models.PositiveIntegerField(
        validators=[MinValueValidator(MIN_PUBLISHED_PORT), MaxValueValidator(MAX_PORT)]
    )
    container_port = models.PositiveIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(MAX_PORT)]
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering: ClassVar = ["site", "protocol", "external_port"]
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["site", "protocol", "external_port"],
                name="networking_portmapping_unique_port_per_site",
            ),
            models.UniqueConstraint(
                fields=["container", "protocol", "container_port"],
                name="networking_portmapping_unique_target_per_container",
            ),
            models.CheckConstraint(
                condition=Q(protocol__in=PortProtocol.values),
                name="networking_portmapping_protocol_valid",
            ),
            models.CheckConstraint(
                condition=Q(external_port__gte=MIN_PUBLISHED_PORT, external_port__lte=MAX_PORT)
                & Q(container_port__gte=1, container_port__lte=MAX_PORT),
                name="networking_portmapping_ports_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.protocol}/{self.external_port} -> :{self.container_port} ({self.name})"


class GatewayState(models.Model):
    """The site's generation counter: every change bumps `requested`; an apply that
    rendered the database after generation N and succeeded sets `applied` to N."""

    site = models.OneToOneField(
        Site, on_delete=models.CASCADE, primary_key=True, related_name="gateway_state"
    )
    requested = models.PositiveBigIntegerField(default=0)
    applied = models.PositiveBigIntegerField(default=0)
    # When the oldest change not yet applied was requested (None: nothing is waiting);
    # /readyz calls a site stale when it waits too long.
    pending_since = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.site_id}: requested {self.requested}, applied {self.applied}"


class RevisionStatus(models.TextChoices):
    APPLIED = "applied", "Applied"
    UNCHANGED = "unchanged", "Unchanged (no reload)"
    FAILED = "failed", "Failed"


class ConfigRevision(models.Model):
    """One apply of a site's gateway files: what it rendered, what changed, how it went."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="config_revisions")
    generation = models.PositiveBigIntegerField(help_text="The request counter this apply covered.")
    content_hash = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=10, choices=RevisionStatus.choices)
    changed = models.JSONField(default=list, blank=True, help_text="Files that changed.")
    actions = models.JSONField(default=list, blank=True, help_text="Reloads and restarts done.")
    counts = models.JSONField(default=dict, blank=True)
    excluded = models.JSONField(
        default=list, blank=True, help_text="Entries left out, and why: [{kind, id, name, reason}]."
    )
    timings = models.JSONField(default=dict, blank=True, help_text="Seconds per phase.")
    duration_ms = models.PositiveIntegerField(default=0)
    # render/validate: fix the data or the settings; server_down/reload: worth retrying.
    error_code = models.CharField(max_length=32, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering: ClassVar = ["-id"]
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=Q(status__in=RevisionStatus.values),
                name="networking_configrevision_status_valid",
            ),
        ]
        indexes: ClassVar = [
            models.Index(fields=["site", "-id"], name="networking_revision_site_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.site_id} generation {self.generation}: {self.status}"

    @property
    def succeeded(self) -> bool:
        return self.status != RevisionStatus.FAILED
