"""The reconciler: a site's containers compared with what Proxmox holds, and safe mends.

One pass per site: celery beat (`containers.reconcile_sites`, every RECONCILE_SITES_INTERVAL
seconds), `manage.py reconcile [--site S] [--dry-run]`, or the admin's *Reconcile now*.
Each pass is stored as a `ReconcileRun` with its findings. It costs one
`GET /nodes/{node}/lxc` per node, one config read per CT of the portal's, and one ACL list.

What it finds, and what it does (with `dry_run`, nothing: every action reads "would"):
- status: Proxmox's running/stopped is recorded; Proxmox is the truth about power.
- drift: hostname, MAC, cores, memory or swap differ: a `mend` job puts the portal's
  values back (the portal owns them: DNS, the DHCP reservation and the quota depend on
  them). A disk of another size is reported only: Proxmox cannot shrink one.
- missing: a live container whose node says it has no such CT (asked twice: the list,
  then the config) is marked error "missing on <node>" and keeps its allocations until
  an operator decides (a delete releases them; a restored CT is found again).
- orphan: a CT with the portal's tag and no live container: reported, never removed. An
  operator adopts or destroys it from the report (`containers.orphans`).
- leak: routes and ports of deleted containers are released; grants of the portal's role
  on VMIDs no live container holds are revoked; a failed create whose CT Proxmox answers
  is absent releases its VMID, name and addresses (and a failed claim's member is
  settled: `pool.claim.claim_settle`).
- unsettled: a failed create whose CT does exist: reported (the container's *Reconcile*
  action removes it).

It fails closed: a node that does not answer is recorded and none of its containers is
judged. Containers a job is working on (or that changed while the pass ran) are left
alone, and a CT with a lock (backup, migration) is looked at again next time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from auth.audit import audit_record
from auth.notification_models import NotificationKind
from auth.notifications import notify
from networking.models import Node, NodeState, PortMapping, Route, Site
from networking.services import container_network_release
from portal.errors import PortalError, UpstreamError

from . import health, reconcile
from .models import (
    ACTIVE_JOB_STATUSES,
    LIVE,
    POWER_STATES,
    Container,
    ContainerStatus,
    FindingAction,
    FindingKind,
    Job,
    ReconcileFinding,
    ReconcileRun,
)
from .pool.claim import claim_settle
from .pool.services import pool_vmids
from .proxmox import ProxmoxClient, ProxmoxNotFound, ProxmoxUnavailable
from .services import container_set_status
from .tags import PORTAL_OWNS, container_id_of, differences, is_managed, is_ours

if TYPE_CHECKING:
    from django.contrib.auth.models import User

log = logging.getLogger(__name__)

# Rows a job owns: the reconciler leaves them to it.
_BUSY = (ContainerStatus.PENDING, ContainerStatus.PROVISIONING, ContainerStatus.DELETING)


@dataclass
class _Pass:
    site: Site
    dry_run: bool
    actor: User | None
    started: datetime
    run: ReconcileRun
    findings: list[ReconcileFinding] = field(default_factory=list)
    # vmid -> (node name, the node's list entry), for the nodes that answered
    seen: dict[int, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    answered: dict[str, Node] = field(default_factory=dict)

    def find(self, kind: str, action: str, message: str, **fields: Any) -> None:
        if self.dry_run and action not in (FindingAction.REPORTED,):
            action = FindingAction.WOULD
        self.findings.append(
            ReconcileFinding(
                run=self.run, kind=kind, action=action, message=message[:500], **fields
            )
        )


def reconcile_site(*, site: Site, dry_run: bool = False, actor: User | None = None) -> ReconcileRun:
    """Compare the site's containers with Proxmox, mend what is safe, store the report."""
    started = timezone.now()
    run = ReconcileRun.objects.create(site=site, dry_run=dry_run, actor=actor, started_at=started)
    p = _Pass(site=site, dry_run=dry_run, actor=actor, started=started, run=run)
    # The rows are read before Proxmox is, so a container deleted meanwhile still
    # covers its CT, and one created meanwhile is recognised by its timestamps.
    rows = list(Container.objects.filter(LIVE, site=site).select_related("node", "site", "owner"))
    _list_nodes(p)
    busy = _busy_container_ids(site, started)
    for c in rows:
        if c.node.name in p.answered and c.pk not in busy and c.status not in _BUSY:
            _check_container(p, c)
    _find_orphans(p)
    _find_leaks(p)
    _finish(p)
    return run


def reconcile_all(*, dry_run: bool = False) -> list[ReconcileRun]:
    """Every site in turn (the beat task); reports older than RECONCILE_KEEP_DAYS go."""
    cutoff = timezone.now() - timedelta(days=settings.RECONCILE_KEEP_DAYS)
    ReconcileRun.objects.filter(started_at__lt=cutoff).delete()
    return [reconcile_site(site=s, dry_run=dry_run) for s in Site.objects.order_by("slug")]


# -- the nodes -------------------------------------------------------------------------------
def _list_nodes(p: _Pass) -> None:
    for node in p.site.nodes.order_by("slot"):
        try:
            entries = ProxmoxClient.for_node(node).lxc_list(node.name)
        except UpstreamError as exc:
            reason = getattr(exc, "reason", "") or exc.message
            p.run.nodes_skipped[node.name] = reason
            p.find(
                FindingKind.UNREACHABLE,
                FindingAction.REPORTED,
                f"{node.name} did not answer ({reason}); its containers were not checked",
                node=node.name,
            )
            if isinstance(exc, ProxmoxUnavailable) and exc.unreachable and not p.dry_run:
                health.node_mark_offline(node=node, reason=reason)
            continue
        p.answered[node.name] = node
        p.run.nodes_checked.append(node.name)
        if node.state == NodeState.OFFLINE and not p.dry_run:
            health.node_mark_active(node=node)
        for entry in entries:
            if str(entry.get("type", "lxc")) == "lxc" and not int(entry.get("template") or 0):
                p.seen[int(entry["vmid"])] = (node.name, entry)


def _busy_container_ids(site: Site, started: datetime) -> set[int]:
    """Containers a job is on, or whose job ended since the pass began (its view is old)."""
    return set(
        Job.objects.filter(container__site=site)
        .filter(Q(status__in=ACTIVE_JOB_STATUSES) | Q(finished_at__gte=started))
        .values_list("container_id", flat=True)
    )


def _unchanged_and_quiet(c: Container, started: datetime) -> bool:
    """Lock the row; True if nothing touched it since the pass began and no job is on it."""
    row = Container.objects.select_for_update().filter(pk=c.pk).values("status", "updated_at")
    current = row.first()
    if current is None or current["status"] != c.status or current["updated_at"] >= started:
        return False
    return not c.jobs.filter(status__in=ACTIVE_JOB_STATUSES).exists()


# -- one container -----------------------------------------------------------------------------
def _check_container(p: _Pass, c: Container) -> None:
    where = p.seen.get(c.vmid)
    client = ProxmoxClient.for_node(c.node)
    config: dict[str, Any] | None = None
    if where is None or where[0] != c.node.name:
        try:
            config = client.container_config(c.node.name, c.vmid)  # the list, asked again
        except ProxmoxNotFound:
            config = None
        except UpstreamError as exc:
            log.warning("reconcile: cannot read CT %s on %s: %s", c.vmid, c.node.name, exc)
            return  # unsure: judged next time
        if config is None:
            _absent(p, c, elsewhere=where[0] if where and is_ours(where[1], c) else "")
            return
    else:
        entry = where[1]
        if entry.get("lock"):
            return
        if not is_ours(entry, c):
            _absent(p, c, foreign=True)
            return
        try:
            config = client.container_config(c.node.name, c.vmid)
        except UpstreamError as exc:
            log.warning("reconcile: cannot read CT %s on %s: %s", c.vmid, c.node.name, exc)
            return
    if config.get("lock"):
        return
    if not is_ours(config, c):
        _absent(p, c, foreign=True)
        return
    if c.status == ContainerStatus.ERROR and reconcile.create_never_finished(c):
        p.find(
            FindingKind.UNSETTLED,
            FindingAction.REPORTED,
            f"{c.hostname}: its create failed, and CT {c.vmid} exists on {c.node.name}; "
            "the container's Reconcile action removes it and frees its name",
            node=c.node.name,
            vmid=c.vmid,
            container=c,
        )
        return
    power = str(where[1].get("status", "")) if where else ""
    power = power or str(client.container_status(c.node.name, c.vmid).get("status", ""))
    _check_status(p, c, power)
    _check_config(p, c, config)


def _absent(p: _Pass, c: Container, *, elsewhere: str = "", foreign: bool = False) -> None:
    node = c.node.name
    if elsewhere:
        p.find(
            FindingKind.DRIFT,
            FindingAction.REPORTED,
            f"{c.hostname}: CT {c.vmid} is on {elsewhere}, not on {node} as recorded; "
            "migrate it back",
            node=node,
            vmid=c.vmid,
            container=c,
            field="node",
            portal_value=node,
            proxmox_value=elsewhere,
        )
        return
    what = (
        f"VMID {c.vmid} on {node} holds a guest the portal does not manage"
        if foreign
        else f"missing on {node}"
    )
    if c.status == ContainerStatus.ERROR and reconcile.create_never_finished(c):
        found = "held by a guest the portal does not manage" if foreign else "absent"
        settled = ""
        if not p.dry_run:
            with transaction.atomic():
                if not _unchanged_and_quiet(c, p.started):
                    return
                reconcile.release_failed_create(container=c, found=found)
            settled = claim_settle(c)  # a failed claim's member (outside the row lock)
        p.find(
            FindingKind.LEAK,
            FindingAction.RELEASED,
            f"{c.hostname}: its create failed and CT {c.vmid} is {found} on {node}; "
            f"VMID {c.vmid}, {c.ip}, {c.mac} and the name are released"
            + (f"; {settled}" if settled else ""),
            node=node,
            vmid=c.vmid,
            container=c,
        )
        return
    message = f"{what}; it keeps its name and addresses until an operator decides"
    action = FindingAction.MARKED_ERROR
    if c.status == ContainerStatus.ERROR and c.status_message.startswith(what):
        action = FindingAction.REPORTED  # known since an earlier pass
    elif not p.dry_run:
        with transaction.atomic():
            if not _unchanged_and_quiet(c, p.started):
                return
            container_set_status(container=c, to=ContainerStatus.ERROR, message=message)
        audit_record(
            actor=p.actor,
            actor_name="" if p.actor else "portal",
            action="container.missing",
            obj=c,
            summary=f"{c.hostname}: {message}",
            changes={"before": str(c.status), "after": ContainerStatus.ERROR},
        )
    p.find(
        FindingKind.MISSING, action, f"{c.hostname}: {message}", node=node, vmid=c.vmid, container=c
    )


def _check_status(p: _Pass, c: Container, power: str) -> None:
    target = POWER_STATES.get(power)
    if target is None or target == c.status:
        return
    before = c.status
    if not p.dry_run:
        with transaction.atomic():
            if not _unchanged_and_quiet(c, p.started):
                return
            container_set_status(container=c, to=target)
    p.find(
        FindingKind.STATUS,
        FindingAction.RECORDED,
        f"{c.hostname}: the portal had {before}, Proxmox says {power}; {power} recorded",
        node=c.node.name,
        vmid=c.vmid,
        container=c,
        field="status",
        portal_value=before,
        proxmox_value=power,
    )


def _check_config(p: _Pass, c: Container, config: dict[str, Any]) -> None:
    diff = differences(c, config)
    if not diff:
        return
    owned = [f for f in diff if f in PORTAL_OWNS]
    job = None
    if owned and not p.dry_run:
        reason = "Proxmox differs in " + ", ".join(
            f"{f} ({diff[f][1]}, not {diff[f][0]})" for f in owned
        )
        try:
            job = reconcile.container_mend(container=c, actor=None, reason=reason)
        except PortalError as exc:  # a job started meanwhile: it is judged next time
            log.info("reconcile: no mend for %s: %s", c.hostname, exc)
    for name, (mine, theirs) in sorted(diff.items()):
        if name in PORTAL_OWNS:
            action = FindingAction.CORRECTED
            then = (
                f"mend job {job.pk} puts back {mine}" if job else f"the portal's {mine} is put back"
            )
        else:
            action = FindingAction.REPORTED
            then = "reported only (Proxmox cannot shrink a disk; resize in the portal to match)"
        p.find(
            FindingKind.DRIFT,
            action,
            f"{c.hostname}: {name} is {theirs} on Proxmox, {mine} in the portal; {then}",
            node=c.node.name,
            vmid=c.vmid,
            container=c,
            field=name,
            portal_value=mine,
            proxmox_value=theirs,
        )


# -- what no live container holds ------------------------------------------------------------------
def _find_orphans(p: _Pass) -> None:
    candidates = {
        vmid: (node, e)
        for vmid, (node, e) in p.seen.items()
        if is_managed(e.get("tags")) and not e.get("lock")
    }
    if not candidates:
        return
    # Asked now, after the lists: a container made or deleted meanwhile is not an orphan.
    held = set(
        Container.objects.filter(LIVE, site=p.site, vmid__in=candidates).values_list(
            "vmid", flat=True
        )
    )
    held |= pool_vmids(p.site)  # the warm pool's members are the portal's, not orphans
    named = {vmid: container_id_of(e.get("tags")) for vmid, (_, e) in candidates.items()}
    recent = set(
        Container.objects.filter(pk__in=[i for i in named.values() if i])
        .filter(LIVE | Q(updated_at__gte=p.started))
        .values_list("pk", flat=True)
    )
    for vmid, (node, entry) in sorted(candidates.items()):
        if vmid in held or named[vmid] in recent:
            continue
        name = entry.get("name", "")
        row = f"container {named[vmid]} (deleted)" if named[vmid] else "no container"
        p.find(
            FindingKind.ORPHAN,
            FindingAction.REPORTED,
            f"CT {vmid} ({name}, {entry.get('status', '?')}) on {node} carries the portal's tag "
            f"but {row} holds it; adopt or destroy it from this report",
            node=node,
            vmid=vmid,
            proxmox_value=str(name)[:200],
        )


def _find_leaks(p: _Pass) -> None:
    dead = Container.objects.filter(site=p.site, status=ContainerStatus.DELETED)
    leaked = (
        dead.filter(Q(pk__in=Route.objects.values("container_id")))
        | dead.filter(Q(pk__in=PortMapping.objects.values("container_id")))
    ).distinct()
    for c in leaked:
        if not p.dry_run:
            container_network_release(container=c)
        p.find(
            FindingKind.LEAK,
            FindingAction.RELEASED,
            f"{c.hostname} is deleted but still held routes or ports; released",
            vmid=c.vmid,
            container=c,
        )
    _find_stale_grants(p)


def _find_stale_grants(p: _Pass) -> None:
    """Grants of the portal's role on a VMID that no live container and no guest holds.

    Only when every node answered: a guest on a silent node could be the grant's reason.
    (An orphan's grants stay: adopting it re-syncs them, destroying it with purge drops them.)
    """
    if not settings.PROXMOX_ACCESS_ENABLED or p.run.nodes_skipped or not p.answered:
        return
    node = next(iter(p.answered.values()))
    client = ProxmoxClient.for_node(node)
    role, suffix = settings.PROXMOX_VM_ROLE, f"@{settings.PROXMOX_REALM}"
    try:
        acl = client.acl()
        # Every guest, QEMU VMs and templates too (the node lists hold only CTs): a grant
        # on any guest may be an operator's, and is left alone.
        guests = {int(g["vmid"]) for g in client.guests()}
    except UpstreamError as exc:
        log.warning("reconcile: cannot list the ACL or the guests: %s", exc)
        return
    live = set(Container.objects.filter(LIVE, site=p.site).values_list("vmid", flat=True))
    for entry in acl:
        path, user = str(entry.get("path", "")), str(entry.get("ugid", ""))
        if (
            entry.get("type") != "user"
            or entry.get("roleid") != role
            or not user.endswith(suffix)
            or not path.startswith("/vms/")
            or not path[5:].isdigit()
            or int(path[5:]) in live
            or int(path[5:]) in guests
        ):
            continue
        if not p.dry_run:
            try:
                client.grant_acl(path=path, role=role, users=user, delete=True)
            except UpstreamError as exc:
                log.warning("reconcile: cannot revoke %s on %s from %s: %s", role, path, user, exc)
                continue
        p.find(
            FindingKind.LEAK,
            FindingAction.RELEASED,
            f"{user} held {role} on {path}, which no guest and no live container holds; revoked",
            vmid=int(path[5:]),
            field="acl",
            proxmox_value=user[:200],
        )


# -- the report ------------------------------------------------------------------------------------
def _finish(p: _Pass) -> None:
    ReconcileFinding.objects.bulk_create(p.findings)
    counts: dict[str, int] = {}
    for f in p.findings:
        counts[f.kind] = counts.get(f.kind, 0) + 1
    run = p.run
    run.counts = counts
    run.finished_at = timezone.now()
    parts = [f"{k} {n}" for k, n in sorted(counts.items())]
    checked = ", ".join(run.nodes_checked) or "no node"
    run.summary = (
        f"{'dry run; ' if p.dry_run else ''}checked {checked}: "
        + (", ".join(parts) if parts else "portal and Proxmox agree")
    )[:500]
    run.save(update_fields=["counts", "finished_at", "summary", "nodes_checked", "nodes_skipped"])
    if p.findings:
        log.warning("reconcile %s: %s", p.site.slug, run.summary)
        if not p.dry_run:
            _tell_operators(p)
    if p.actor is not None:
        audit_record(
            actor=p.actor,
            action="site.reconcile",
            obj=p.site,
            summary=run.summary[:300],
            changes={"run": run.pk, "dry_run": p.dry_run},
        )


def _tell_operators(p: _Pass) -> None:
    """Operators hear of findings the site's previous run did not have (the periodic run
    repeats what is still there every few minutes: once is enough)."""
    previous = (
        ReconcileRun.objects.filter(site=p.site, dry_run=False, finished_at__isnull=False)
        .exclude(pk=p.run.pk)
        .order_by("-started_at")
        .first()
    )
    known = set(previous.findings.values_list("message", flat=True)) if previous else set()
    new = [f for f in p.findings if f.message not in known]
    if not new:
        return
    lines = "\n".join(f"- [{f.kind}, {f.action}] {f.message}" for f in new[:50])
    more = f"\n... and {len(new) - 50} more" if len(new) > 50 else ""
    notify(
        kind=NotificationKind.RECONCILE,
        subject=f"Reconciler: {len(new)} new finding(s) on {p.site.name}",
        text=f"The reconcile of {p.site.name} found:\n{lines}{more}\n\n{p.run.summary}\n",
        operators=True,
        site=p.site,
        data={"site": p.site.slug, "run": p.run.pk, "counts": p.run.counts, "new": len(new)},
    )
