"""The one check every reliability case ends with: the portal's database agrees with Proxmox.

- no CT on the cluster that the portal does not know (tagged ct-N, or at a VMID it holds);
- no live container without its CT (right node, right tag, right MAC);
- no VMID, IP, MAC or gateway port held twice, or held by nothing;
- no route or port mapping on a deleted container;
- every job in a final state, a failed one with a message that says what happened.

Guests that were on the simulator before the case (`baseline`) are not the case's.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from containers.models import LIVE, Container, Job, JobStatus
from networking.models import PortMapping, Route, Site
from tests.figures import count_leaks

TAG_RE = re.compile(r"(?:^|;)ct-(\d+)(?:;|$)")


@dataclass
class Disagreement(AssertionError):
    problems: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return "the portal and Proxmox disagree:\n  " + "\n  ".join(self.problems)


def guest_vmids(sim: Any) -> frozenset[int]:
    """The VMIDs on the simulator now: a case's baseline."""
    return frozenset(int(g["vmid"]) for g in sim.admin.guests())


def _tag_pk(conf: dict[str, Any]) -> int | None:
    tags = str(conf.get("tags") or "")
    if settings.PROXMOX_MANAGED_TAG not in tags.split(";"):
        return None
    m = TAG_RE.search(tags)
    return int(m.group(1)) if m else None


def _mac(conf: dict[str, Any]) -> str:
    m = re.search(r"hwaddr=([0-9A-Fa-f:]{17})", str(conf.get("net0") or ""))
    return m.group(1).lower() if m else ""


def disagreements(site: Site, sim: Any, *, baseline: Iterable[int] = ()) -> list[str]:
    problems: list[str] = []
    before = set(baseline)
    guests = {int(g["vmid"]): g for g in sim.admin.guests() if int(g["vmid"]) not in before}
    containers = list(Container.objects.filter(site=site).select_related("node"))
    live = [c for c in containers if c.is_live]
    by_pk = {c.pk: c for c in containers}
    live_vmids = {c.vmid: c for c in live}

    # 1. every CT on the cluster is a live container's
    for vmid, g in sorted(guests.items()):
        pk = _tag_pk(g["conf"])
        owner = by_pk.get(pk) if pk is not None else live_vmids.get(vmid)
        if owner is None:
            problems.append(f"CT {vmid} on {g['node']} (tags {g['conf'].get('tags')!r}) is unknown")
        elif not owner.is_live:
            problems.append(
                f"CT {vmid} on {g['node']} belongs to container {owner.pk} ({owner.hostname}), "
                f"which the portal says is deleted: {owner.status_message!r}"
            )
        elif owner.vmid != vmid or owner.node.name != g["node"]:
            problems.append(
                f"CT {vmid} on {g['node']} is tagged ct-{owner.pk}, which the portal has as "
                f"CT {owner.vmid} on {owner.node.name}"
            )

    # 2. every live container has its CT, where the portal thinks it is
    for c in live:
        g = guests.get(c.vmid)
        if g is None:
            problems.append(
                f"container {c.pk} ({c.hostname}, {c.status}: {c.status_message!r}) holds "
                f"VMID {c.vmid}, {c.ip} and {c.mac}, but no CT {c.vmid} is on Proxmox"
            )
            continue
        if g["node"] != c.node.name:
            problems.append(f"container {c.pk} is on {c.node.name}; its CT is on {g['node']}")
        if _tag_pk(g["conf"]) != c.pk:
            problems.append(f"CT {c.vmid} is not tagged ct-{c.pk}: {g['conf'].get('tags')!r}")
        if _mac(g["conf"]) != c.mac.lower():
            problems.append(f"CT {c.vmid} has MAC {_mac(g['conf'])!r}, the portal {c.mac}")

    # 3. nothing held twice (the constraints say so; a missing one would show here)
    for what, values in (
        ("VMID", [c.vmid for c in live]),
        ("IP", [c.ip for c in live]),
        ("MAC", [c.mac.lower() for c in live]),
        ("hostname", [c.hostname for c in live]),
    ):
        for value, n in Counter(values).items():
            if n > 1:
                problems.append(f"{what} {value} is held by {n} live containers")
    ports = Counter(PortMapping.objects.filter(site=site).values_list("protocol", "external_port"))
    problems += [f"gateway port {p}/{n} is held {k} times" for (p, n), k in ports.items() if k > 1]

    # 4. no route or port on a container that is gone
    for r in Route.objects.filter(site=site).exclude(container__in=Container.objects.filter(LIVE)):
        problems.append(f"route {r.subdomain} is on deleted container {r.container_id}")
    for m in PortMapping.objects.filter(site=site).exclude(
        container__in=Container.objects.filter(LIVE)
    ):
        problems.append(
            f"port {m.protocol}/{m.external_port} is on deleted container {m.container_id}"
        )

    # 5. every job final; a failure says what happened
    for job in Job.objects.filter(container__site=site):
        if not job.is_final:
            problems.append(f"{job.kind} job {job.pk} is still {job.status}")
        elif job.status == JobStatus.FAILED and (
            len(job.error.strip()) < 20 or not job.error_code or "Traceback" in job.error
        ):
            problems.append(
                f"{job.kind} job {job.pk} failed without a clear message: {job.error!r}"
            )
    return problems


def assert_portal_agrees_with_cluster(
    site: Site, sim: Any, *, baseline: Iterable[int] = ()
) -> None:
    """Fail (and count a leak) if the portal's database and the simulator disagree."""
    problems = disagreements(site, sim, baseline=baseline)
    if problems:
        count_leaks(len(problems))
        raise Disagreement(problems)
