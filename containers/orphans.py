"""An operator's decision on an orphan the reconciler reported: adopt it, or destroy it.

An orphan is a CT that carries the portal's tag while no live container holds it. The
reconciler never removes one by itself; these services act only on a finding, only
after reading the CT again, and only while it still carries the tag.

- adopt: the CT becomes a container of the portal. It keeps its VMID, node, name (when
  free and valid) and resources; it gets a new address from the site's pool, its default
  route and SSH port, and a `mend` job that tags it, sets its MAC and grants access. Its
  owner is the deleted container's owner its tag names, or the operator.
- destroy: a Celery task stops and purges the CT, and records the outcome on the finding.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from auth.audit import audit_record
from networking.models import Site
from networking.services import container_network_allocate
from networking.validators import validate_hostname
from portal.errors import (
    ErrorCode,
    InvalidState,
    PermissionDenied,
    UpstreamError,
    UpstreamUnavailable,
)

from .allocation import next_address
from .models import (
    LIVE,
    POWER_STATES,
    Container,
    ContainerStatus,
    FindingKind,
    Job,
    JobKind,
    ReconcileFinding,
    Template,
)
from .pool.services import pool_vmids
from .proxmox import ProxmoxClient, ProxmoxNotFound
from .services import job_create
from .tags import container_id_of, is_managed, rootfs_gib
from .validation import hostname_taken

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from networking.models import Node

log = logging.getLogger(__name__)


def _open_orphan(finding: ReconcileFinding, actor: User) -> tuple[Node, dict[str, Any]]:
    """The finding's node and the CT's config, read now; refused unless it is still an orphan."""
    if not actor.is_staff:
        raise PermissionDenied("only staff may act on a reconcile report")
    if finding.kind != FindingKind.ORPHAN or finding.vmid is None:
        raise InvalidState("only an orphan can be adopted or destroyed")
    if finding.resolved_at is not None:
        raise InvalidState(f"already settled: {finding.resolution}")
    site = finding.run.site
    node = site.nodes.filter(name=finding.node).first()
    if node is None:
        raise InvalidState(f"{site.name} has no node {finding.node} now")
    vmid = finding.vmid
    try:
        config = ProxmoxClient.for_node(node).container_config(node.name, vmid)
    except ProxmoxNotFound as exc:
        raise InvalidState(f"CT {vmid} is no longer on {node.name}") from exc
    except UpstreamError as exc:
        raise UpstreamUnavailable(
            f"cannot read CT {vmid} on {node.name} ({exc.message}); nothing changed",
            code=ErrorCode.PROXMOX_UNAVAILABLE,
        ) from exc
    if not is_managed(config.get("tags")):
        raise InvalidState(
            f"CT {vmid} no longer carries the tag {settings.PROXMOX_MANAGED_TAG}",
        )
    if config.get("lock"):
        raise InvalidState(f"CT {vmid} is locked ({config['lock']})")
    if Container.objects.filter(LIVE, site=site, vmid=vmid).exists():
        raise InvalidState(f"a live container holds VMID {vmid} now")
    if vmid in pool_vmids(site):
        raise InvalidState(f"CT {vmid} is a member of the warm pool now")
    return node, config


def _settle(finding: ReconcileFinding, resolution: str) -> None:
    ReconcileFinding.objects.filter(pk=finding.pk).update(
        resolution=resolution[:300], resolved_at=timezone.now()
    )
    finding.resolution, finding.resolved_at = resolution[:300], timezone.now()


def _template_for(site: Site, config: dict[str, Any]) -> Template:
    templates = Template.objects.filter(site=site, enabled=True).order_by("name")
    template = templates.filter(os_type=str(config.get("ostype", ""))).first() or templates.first()
    if template is None:
        raise InvalidState(
            f"{site.name} offers no template to record it under", code=ErrorCode.NO_TEMPLATE
        )
    return template


def _hostname_for(site: Site, config: dict[str, Any], vmid: int) -> str:
    name = str(config.get("hostname", "")).lower()
    try:
        validate_hostname(name)
    except ValidationError:
        name = ""
    if not name or hostname_taken(site, name):
        name = f"ct{vmid}"
    if hostname_taken(site, name):
        raise InvalidState(
            f"no free name for CT {vmid}: {name} is taken", code=ErrorCode.HOSTNAME_TAKEN
        )
    return name


def orphan_adopt(*, finding: ReconcileFinding, actor: User) -> Job:
    """Take an orphan CT in as a container; a `mend` job then tags and addresses it."""
    node, config = _open_orphan(finding, actor)
    vmid = int(finding.vmid or 0)
    previous = container_id_of(config.get("tags"))
    gone = (
        Container.objects.filter(pk=previous).select_related("owner").first() if previous else None
    )
    owner = gone.owner if gone is not None else actor
    status = str(ProxmoxClient.for_node(node).container_status(node.name, vmid).get("status"))
    with transaction.atomic():
        site = Site.objects.select_for_update().get(pk=node.site_id)
        hostname = _hostname_for(site, config, vmid)
        template = _template_for(site, config)
        ip, mac = next_address(site)
        container = Container.objects.create(
            site=site,
            node=node,
            vmid=vmid,
            hostname=hostname,
            owner=owner,
            template=template,
            cores=int(config.get("cores") or template.default_cores),
            memory_mib=int(config.get("memory") or 512),
            swap_mib=int(config.get("swap") or 0),
            disk_gib=rootfs_gib(config.get("rootfs")) or template.default_disk_gib,
            ip=ip,
            mac=mac,
            description=f"adopted CT {vmid}",
            status=POWER_STATES.get(status, ContainerStatus.STOPPED),
        )
        container_network_allocate(container=container)
        job = job_create(
            kind=JobKind.MEND,
            container=container,
            actor=actor,
            params={"reason": f"adopted from reconcile run {finding.run_id}"},
            new_container=True,
        )
        resolution = (
            f"adopted as {hostname} (container {container.pk}) for {owner.get_username()} "
            f"by {actor.get_username()}"
        )
        _settle(finding, resolution)
        audit_record(
            actor=actor,
            action="container.adopt",
            obj=container,
            summary=f"CT {vmid} on {node.name}: {resolution}",
            changes={"vmid": vmid, "node": node.name, "ip": ip, "job": str(job.pk)},
        )
    return job


def orphan_destroy(*, finding: ReconcileFinding, actor: User) -> str:
    """Queue the removal of an orphan CT (stop, then destroy with purge)."""
    from .tasks import destroy_orphan

    node, _ = _open_orphan(finding, actor)
    _settle(finding, f"destroy asked by {actor.get_username()}")
    audit_record(
        actor=actor,
        action="orphan.destroy",
        object_type="proxmox.ct",
        object_id=f"{node.name}/{finding.vmid}",
        object_repr=f"CT {finding.vmid} on {node.name}",
        summary=f"asked to destroy orphan CT {finding.vmid} on {node.name}",
        changes={"finding": finding.pk},
    )
    transaction.on_commit(lambda: destroy_orphan.apply_async(args=(finding.pk,), queue="proxmox"))
    return f"CT {finding.vmid} on {node.name} is being destroyed"


def destroy_orphan_now(finding_id: int) -> str:
    """The task's body: read the CT once more, stop it, destroy it; record what happened."""
    finding = ReconcileFinding.objects.select_related("run__site").get(pk=finding_id)
    node = finding.run.site.nodes.get(name=finding.node)
    vmid = int(finding.vmid or 0)
    client = ProxmoxClient.for_node(node)
    try:
        config = client.container_config(node.name, vmid)
        if (
            not is_managed(config.get("tags"))
            or Container.objects.filter(LIVE, site=node.site_id, vmid=vmid).exists()
            or vmid in pool_vmids(node.site_id)
        ):
            outcome = f"CT {vmid} is no longer an orphan; left alone"
        else:
            if client.container_status(node.name, vmid).get("status") == "running":
                client.wait_task(client.stop(node.name, vmid))
            client.wait_task(client.delete_container(node.name, vmid, purge=True, force=True))
            outcome = f"CT {vmid} destroyed on {node.name}"
    except ProxmoxNotFound:
        outcome = f"CT {vmid} was already gone from {node.name}"
    except UpstreamError as exc:
        outcome = f"destroying CT {vmid} failed: {exc.message}; it is reported again next run"
        ReconcileFinding.objects.filter(pk=finding.pk).update(resolution=outcome, resolved_at=None)
        log.warning("orphan %s: %s", finding.pk, outcome)
        return outcome
    ReconcileFinding.objects.filter(pk=finding.pk).update(resolution=outcome[:300])
    return outcome
