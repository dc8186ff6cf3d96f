"""The sweep: agents the portal enrolled whose container is gone are removed from the
manager; everything else stays.

Daily (beat `containers.sweep_wazuh_agents`), or `manage.py wazuh sweep [--site S]
[--dry-run]`. Each run of a site is stored as a `WazuhSweepRun` (admin: *Wazuh sweep
reports*) and, unless a dry run, operators hear of what it removed and of what it could
not check (`NotificationKind.WAZUH_SWEEP`).

What it may remove: only agents of `WazuhAgent` rows, the portal's record of what it
enrolled, by the name it recorded. Never an agent it has no row for (the manager's own
000, the hypervisors' and the gateway's agents, anyone's by hand), whatever its name.

When it removes one (both the portal and Proxmox must vouch that the container is gone):
- the portal: the row's container is deleted and no job is on it (a row left
  `removal_pending` by a delete job that could not reach the manager is such a row);
- Proxmox, asked once per site (`GET /cluster/resources`, guests and nodes in one call):
  every node is online, the answer lists every live container (a partial answer vouches
  for nothing), and the container's VMID is absent or held by another guest (tagged as
  another container's, or untagged under another name);
- the manager: its agent of that name, found in one paged `GET /agents` that leaves the
  manager's own 000 out (`q=id!=000`: 000 is never a candidate, whatever a row's name), is
  deleted in one `DELETE /agents` per batch; one the manager no longer has is recorded
  removed.

It fails closed: a manager or Proxmox that does not answer, a node that is not online, a
VMID still held by the container's CT (or by a guest that may be it, or one locked), a
live container, a job in progress, or a manager-side id other than the recorded one:
the agent stays, and the report says why. A dry run asks the same questions, stores its
report and changes nothing else.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db.models import Case, IntegerField, Value, When
from django.utils import timezone

from auth.audit import audit_record
from auth.notification_models import NotificationKind
from auth.notifications import notify
from networking.models import Node, NodeState, Site
from portal.errors import UpstreamError

from ..models import ACTIVE_JOB_STATUSES, Container, ContainerStatus, Job
from ..proxmox import ProxmoxClient
from ..reconcile import create_never_finished
from ..tags import container_id_of, is_managed, is_ours
from .client import EXCEPT_MANAGER, MANAGER_AGENT_ID, WazuhClient, WazuhError, WazuhUnavailable
from .models import AgentStatus, WazuhAgent, WazuhSweepRun
from .selectors import agents_of_site, manager_for_site

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from .models import WazuhManager

log = logging.getLogger(__name__)

DELETE_BATCH = 200  # ids per DELETE /agents (a query string well under any URL limit)
UNKNOWN_AGENT = 1701  # DELETE /agents failed item: "Agent does not exist"
# A live container the Proxmox list must show for the list to be trusted as complete.
_SETTLED = (ContainerStatus.RUNNING, ContainerStatus.STOPPED)


@dataclass
class _Run:
    site: Site
    manager: WazuhManager
    dry_run: bool
    actor: User | None
    run: WazuhSweepRun
    removed: list[dict[str, Any]] = field(default_factory=list)
    kept: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    live: int = 0
    client: WazuhClient | None = None  # one per run: it logs in once

    def keep(self, row: WazuhAgent, reason: str) -> None:
        self.kept.append({**_describe(row), "reason": reason[:300]})

    def keep_all(self, rows: Iterable[WazuhAgent], reason: str) -> None:
        for row in rows:
            self.keep(row, reason)


def _describe(row: WazuhAgent) -> dict[str, Any]:
    c = row.container
    return {
        "name": row.name,
        "agent_id": row.agent_id,
        "container": c.pk if c else None,
        "hostname": c.hostname if c else "",
        "vmid": c.vmid if c else None,
    }


def wazuh_sweep_site(
    *, site: Site, dry_run: bool = False, actor: User | None = None
) -> WazuhSweepRun | None:
    """Sweep one site's leftover agents; the stored report, or None when the site has no
    enabled manager (the feature is off there: nothing is asked, nothing stored)."""
    manager = manager_for_site(site)
    if manager is None:
        return None
    run = WazuhSweepRun.objects.create(
        site=site, dry_run=dry_run, actor=actor, started_at=timezone.now()
    )
    r = _Run(site=site, manager=manager, dry_run=dry_run, actor=actor, run=run)
    candidates = _portal_candidates(r)
    if candidates:
        candidates = _manager_and_proxmox(r, candidates)
    if candidates:
        _remove(r, candidates)
    _finish(r)
    return run


def wazuh_sweep_all(*, dry_run: bool = False) -> list[WazuhSweepRun]:
    """Every site with an enabled manager (the daily beat task); reports older than
    WAZUH_SWEEP_KEEP_DAYS go first."""
    cutoff = timezone.now() - timedelta(days=settings.WAZUH_SWEEP_KEEP_DAYS)
    WazuhSweepRun.objects.filter(started_at__lt=cutoff).delete()
    runs = []
    for site in Site.objects.filter(wazuh__enabled=True).order_by("slug"):
        try:
            run = wazuh_sweep_site(site=site, dry_run=dry_run)
        except Exception:  # one site's bug must not spare the others their sweep
            log.exception("wazuh sweep: site %s failed", site.slug)
            continue
        if run is not None:
            runs.append(run)
    return runs


# -- the portal's word ----------------------------------------------------------------------
def _portal_candidates(r: _Run) -> list[WazuhAgent]:
    """The rows whose container the portal records as gone, with no job on it; the others
    are counted as live or kept with the reason."""
    rows = list(agents_of_site(r.site).select_related("container", "container__node"))
    deleted = [
        row.container_id
        for row in rows
        if row.container is not None and row.container.status == ContainerStatus.DELETED
    ]
    busy = set(
        Job.objects.filter(container_id__in=deleted, status__in=ACTIVE_JOB_STATUSES).values_list(
            "container_id", flat=True
        )
    )
    candidates = []
    for row in rows:
        c = row.container
        if c is None:
            r.keep(row, "no container is recorded for it: the portal cannot vouch for its end")
        elif c.status != ContainerStatus.DELETED:
            if row.status == AgentStatus.REMOVAL_PENDING:
                r.keep(row, f"marked for removal, but {_why_live(c)}")
            else:
                r.live += 1
        elif c.pk in busy:
            r.keep(row, f"a job is running on {c.hostname}; judged next time")
        else:
            candidates.append(row)
    return candidates


def _why_live(c: Container) -> str:
    if c.status in (ContainerStatus.PENDING, ContainerStatus.PROVISIONING):
        return f"{c.hostname}'s create is unfinished"
    if c.status == ContainerStatus.DELETING:
        return f"{c.hostname}'s delete is running"
    if c.status == ContainerStatus.ERROR and create_never_finished(c):
        return f"{c.hostname}'s create failed and is not settled (the container's Reconcile)"
    return f"{c.hostname} is {c.status} in the portal"


# -- the manager's and Proxmox's word --------------------------------------------------------
@dataclass
class _Proxmox:
    guests: dict[int, dict[str, Any]]
    refusal: str  # why Proxmox cannot vouch for any absence ("" when it can)


def _manager_and_proxmox(r: _Run, candidates: list[WazuhAgent]) -> list[WazuhAgent]:
    """The candidates both Proxmox and the manager let go of, each with the manager's id
    (`agent_id`, or "" when the manager no longer has it); the others are kept."""
    client = r.client = WazuhClient.for_manager(r.manager)
    try:
        listed = client.agents(select=["name"], q=EXCEPT_MANAGER)
    except (WazuhError, WazuhUnavailable) as exc:
        r.errors.append(f"the Wazuh manager did not answer: {exc.message}")
        r.keep_all(candidates, "the Wazuh manager did not answer; nothing was removed")
        return []
    on_manager = {str(a.get("name")): str(a.get("id")) for a in listed}
    proxmox = _proxmox_view(r)
    if proxmox.refusal:
        r.errors.append(proxmox.refusal)
        r.keep_all(candidates, f"Proxmox cannot vouch for its absence: {proxmox.refusal}")
        return []
    node_names = set(r.site.nodes.values_list("name", flat=True))
    # 000 is not listed (q); should a manager list it all the same, its name is reserved.
    manager_name = next((n for n, i in on_manager.items() if i == MANAGER_AGENT_ID), None)
    chosen = []
    for row in candidates:
        reason = _proxmox_reason(proxmox, row.container) or _manager_reason(
            row, on_manager, node_names | {manager_name or ""}
        )
        if reason:
            r.keep(row, reason)
            continue
        row.agent_id = on_manager.get(row.name, "")
        chosen.append(row)
    return chosen


def _proxmox_view(r: _Run) -> _Proxmox:
    """The cluster's guests and nodes from one `/cluster/resources` call (the first node
    that answers, active ones first), and whether it can vouch for absences."""
    nodes = list(
        r.site.nodes.annotate(
            down=Case(
                When(state=NodeState.ACTIVE, then=Value(0)),
                When(state=NodeState.MAINTENANCE, then=Value(1)),
                default=Value(2),
                output_field=IntegerField(),
            )
        ).order_by("down", "slot")
    )
    if not nodes:
        return _Proxmox({}, f"site {r.site.slug} has no node to ask")
    resources: list[dict[str, Any]] | None = None
    failures = []
    for node in nodes:
        try:
            resources = ProxmoxClient.for_node(node).cluster_resources(type=None)
            break
        except UpstreamError as exc:
            failures.append(f"{node.name}: {getattr(exc, 'reason', '') or exc.message}")
    if resources is None:
        return _Proxmox({}, "Proxmox did not answer (" + "; ".join(failures) + ")")
    guests = {
        int(e["vmid"]): e
        for e in resources
        if e.get("type") in ("lxc", "qemu") and e.get("vmid") is not None
    }
    states = {
        str(e.get("node")): str(e.get("status")) for e in resources if e.get("type") == "node"
    }
    return _Proxmox(guests, _node_refusal(nodes, states) or _partial_refusal(r.site, guests))


def _node_refusal(nodes: Sequence[Node], states: dict[str, str]) -> str:
    """Why the nodes' states forbid any removal: one not online in Proxmox's answer (or
    missing from it), or marked offline by the portal."""
    down = {name: status for name, status in states.items() if status != "online"}
    for node in nodes:
        if node.name not in states:
            down[node.name] = "not in Proxmox's answer"
        elif node.state == NodeState.OFFLINE:
            down.setdefault(node.name, f"offline since {node.offline_since or '?'}")
    if not down:
        return ""
    listed = ", ".join(f"{name} ({why})" for name, why in sorted(down.items()))
    return f"node(s) not answering: {listed}; nothing is removed until every node answers"


def _partial_refusal(site: Site, guests: dict[int, dict[str, Any]]) -> str:
    """An answer that lacks live containers (a token without VM.Audit somewhere, a
    partial cluster) cannot vouch for the absence of deleted ones."""
    missing = sorted(
        Container.objects.filter(site=site, status__in=_SETTLED)
        .exclude(vmid__in=list(guests))
        .values_list("hostname", flat=True)
    )
    if not missing:
        return ""
    shown = ", ".join(missing[:10]) + (
        f" and {len(missing) - 10} more" if len(missing) > 10 else ""
    )
    return f"Proxmox's list lacks live container(s) {shown}: it cannot vouch for absences"


def _proxmox_reason(proxmox: _Proxmox, c: Container | None) -> str:
    """Why Proxmox's answer keeps this container's agent ("" when it vouches)."""
    assert c is not None  # candidates have a container
    entry = proxmox.guests.get(c.vmid)
    if entry is None:
        return ""
    where = f"VMID {c.vmid} on {entry.get('node', '?')}"
    if entry.get("lock"):
        return f"{where} is locked ({entry['lock']}); judged next time"
    if is_ours(entry, c):
        return f"{where} still holds {c.hostname}'s CT; remove it first (the reconciler reports it)"
    tagged = container_id_of(entry.get("tags")) if is_managed(entry.get("tags")) else None
    if tagged is None and str(entry.get("name", "")) == c.hostname:
        return f"{where} holds a guest named {c.hostname} without the portal's tags: it may be it"
    return ""  # the VMID now belongs to another guest


def _manager_reason(row: WazuhAgent, on_manager: dict[str, str], reserved: set[str]) -> str:
    """Why the manager's side keeps this agent ("" when it may go)."""
    if row.name in reserved:
        return f"{row.name} is a node's or the manager's own name: never the portal's to remove"
    agent_id = on_manager.get(row.name)
    if agent_id == MANAGER_AGENT_ID:
        return "the manager's own agent 000 is never removed"
    if agent_id and row.agent_id and agent_id != row.agent_id:
        return (
            f"the manager's agent {row.name} is {agent_id}, the portal enrolled "
            f"{row.agent_id}: enrolled again by someone else? left alone"
        )
    return ""


# -- removal --------------------------------------------------------------------------------
def _remove(r: _Run, chosen: list[WazuhAgent]) -> None:
    gone = [row for row in chosen if not row.agent_id]
    present = [row for row in chosen if row.agent_id]
    for row in gone:
        _record_removed(r, row, how="gone")
    if r.dry_run:
        for row in present:
            _record_removed(r, row, how="deleted")
        return
    client = r.client
    assert client is not None  # set when the manager answered
    for start in range(0, len(present), DELETE_BATCH):
        batch = present[start : start + DELETE_BATCH]
        try:
            result = client.delete_agents(row.agent_id for row in batch)
        except (WazuhError, WazuhUnavailable) as exc:
            r.errors.append(f"the Wazuh manager refused or dropped a delete: {exc.message}")
            r.keep_all(batch, f"the delete did not complete ({exc.message}); tried again next time")
            continue
        affected, failed = set(result.affected), _failures(result.failed)
        for row in batch:
            if row.agent_id in affected or failed.get(row.agent_id, (0, ""))[0] == UNKNOWN_AGENT:
                _record_removed(r, row, how="deleted" if row.agent_id in affected else "gone")
            else:
                code, message = failed.get(row.agent_id, (0, "not in the manager's answer"))
                why = f"the manager did not delete it: {message} ({code})"
                WazuhAgent.objects.filter(pk=row.pk).update(last_error=why[:500])
                r.keep(row, why)


def _failures(items: list[dict[str, Any]]) -> dict[str, tuple[int, str]]:
    out: dict[str, tuple[int, str]] = {}
    for item in items:
        error = item.get("error") or {}
        for agent_id in item.get("id") or []:
            out[str(agent_id)] = (int(error.get("code") or 0), str(error.get("message") or ""))
    return out


def _record_removed(r: _Run, row: WazuhAgent, *, how: str) -> None:
    r.removed.append({**_describe(row), "how": how})
    if r.dry_run:
        return
    now = timezone.now()
    WazuhAgent.objects.filter(pk=row.pk).exclude(status=AgentStatus.REMOVED).update(
        status=AgentStatus.REMOVED,
        agent_id=row.agent_id,
        removed_at=now,
        status_updated_at=now,
        last_error="",
    )


# -- the report -----------------------------------------------------------------------------
def _finish(r: _Run) -> None:
    run = r.run
    run.removed, run.kept, run.errors, run.live = r.removed, r.kept, r.errors, r.live
    run.finished_at = timezone.now()
    run.summary = _summary(r)[:500]
    run.save(update_fields=["removed", "kept", "errors", "live", "finished_at", "summary"])
    if r.removed or r.kept or r.errors:
        log.warning("wazuh sweep %s: %s", r.site.slug, run.summary)
    if r.dry_run:
        return
    if r.removed or r.actor is not None:
        audit_record(
            actor=r.actor,
            actor_name="" if r.actor else "portal",
            action="wazuh.sweep",
            obj=r.site,
            summary=run.summary[:300],
            changes={"run": run.pk, "removed": [item["name"] for item in r.removed]},
        )
    _tell_operators(r)


def _summary(r: _Run) -> str:
    verb = "would remove" if r.dry_run else "removed"
    parts = [f"{verb} {len(r.removed)}"]
    if r.removed:
        parts[0] += " (" + ", ".join(item["name"] for item in r.removed[:20]) + ")"
    parts.append(f"kept {len(r.kept)}")
    parts.append(f"{r.live} of live containers left alone")
    text = ("dry run; " if r.dry_run else "") + "; ".join(parts)
    if r.errors:
        text += "; " + " ".join(r.errors)
    return text


def _tell_operators(r: _Run) -> None:
    """Operators hear of every removal and every error, and of agents kept for a reason
    the site's previous sweep did not give (a leftover kept daily is told once)."""
    previous = (
        WazuhSweepRun.objects.filter(site=r.site, dry_run=False, finished_at__isnull=False)
        .exclude(pk=r.run.pk)
        .order_by("-started_at")
        .first()
    )
    known = {(k["name"], k["reason"]) for k in previous.kept} if previous else set()
    new_kept = [k for k in r.kept if (k["name"], k["reason"]) not in known]
    if not (r.removed or r.errors or new_kept):
        return
    lines = [f"- removed {item['name']} ({_what(item)}; {item['how']})" for item in r.removed]
    lines += [f"- kept {item['name']} ({_what(item)}): {item['reason']}" for item in new_kept]
    lines += [f"- error: {e}" for e in r.errors]
    more = f"\n... and {len(lines) - 50} more" if len(lines) > 50 else ""
    notify(
        kind=NotificationKind.WAZUH_SWEEP,
        subject=(
            f"Wazuh sweep of {r.site.name}: {len(r.removed)} removed, {len(new_kept)} kept"
            + (", errors" if r.errors else "")
        ),
        text=f"The Wazuh agent sweep of {r.site.name}:\n"
        + "\n".join(lines[:50])
        + f"{more}\n\n{r.run.summary}\n",
        operators=True,
        site=r.site,
        data={
            "site": r.site.slug,
            "run": r.run.pk,
            "removed": len(r.removed),
            "kept": len(new_kept),
            "errors": len(r.errors),
        },
    )


def _what(item: dict[str, Any]) -> str:
    if item["container"] is None:
        return "no container"
    return f"{item['hostname']}, VMID {item['vmid']}"
