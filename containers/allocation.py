"""What a container is given on its site: a free name, a VMID (and so its node), an
address and its MAC; each found by indexed queries, never by reading every live
container of the site (networking.allocation says how), and what it gives back.

Call the `next_*` functions inside the transaction that holds the site's row lock
(`Site.objects.select_for_update()`), and insert the container in that transaction: the
lock keeps two requests from choosing the same values, and the partial unique
constraints on the live containers' (site, hostname / vmid / ip / mac) back it up. The
rule of each is the scan's: the lowest free value, a released one first, at once. Whoever
frees a container's VMID or address calls `release_container` in the transaction that
frees it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection

from django.conf import settings
from django.db.models import F, QuerySet

from networking.allocation import (
    UsedInRows,
    free_ip,
    mac_for,
    release,
    release_ip,
    take_lowest,
)
from networking.models import Node, NodeState, NumberKind, Site
from portal.errors import Conflict, ErrorCode, ResourceExhausted, UpstreamError

from .models import LIVE, Container
from .placement import node_for, vmid_domain
from .validation import hostname_taken

log = logging.getLogger(__name__)


# -- names, VMIDs, addresses -----------------------------------------------------------------
def live_on(site: Site) -> QuerySet[Container]:
    """The site's containers that hold their name, VMID, address and MAC."""
    return Container.objects.filter(LIVE, site=site)


def require_free_hostname(site: Site, hostname: str) -> None:
    if hostname_taken(site, hostname):
        raise Conflict(
            f"hostname '{hostname}' is already taken on {site.name}",
            code=ErrorCode.HOSTNAME_TAKEN,
            field="hostname",
        )


def next_vmid(site: Site, *, skip: Collection[int] = ()) -> tuple[int, Node]:
    """The lowest free VMID that maps to an active node of the site, and that node.

    `skip`: VMIDs the database does not know of but Proxmox has (proxmox_used_vmids).
    """
    nodes = list(site.nodes.order_by("slot"))
    domain = vmid_domain(nodes, vmid_min=settings.VMID_MIN, vmid_max=settings.VMID_MAX)
    used = UsedInRows(live_on(site), F("vmid"))
    vmid = take_lowest(site.pk, NumberKind.VMID, domain, used, skip=skip)
    if vmid is None:
        raise ResourceExhausted(
            f"no free VMID left between {settings.VMID_MIN} and {settings.VMID_MAX}",
            code=ErrorCode.VMID_EXHAUSTED,
        )
    return vmid, node_for(vmid, nodes)


def next_address(site: Site) -> tuple[str, str]:
    """The lowest free address of the site (outside its reserved and DHCP ranges), and
    the MAC that goes with it."""
    ip = free_ip(site, held=live_on(site))
    return ip, mac_for(site.pk, ip)


def release_container(container: Container) -> None:
    """A container no longer holds its VMID and address (it is deleted)."""
    vmid, ip = Container.objects.filter(pk=container.pk).values_list("vmid", "ip").get()
    release(container.site_id, NumberKind.VMID, [vmid])
    release_ip(container.site_id, ip)


def release_vmid(container: Container, vmid: int) -> None:
    """A container left `vmid` for another."""
    release(container.site_id, NumberKind.VMID, [vmid])


# -- what Proxmox already has --------------------------------------------------------------
_foreign_cache: dict[int, tuple[float, frozenset[int]]] = {}
_foreign_refreshing: set[int] = set()
_foreign_lock = threading.Lock()


def proxmox_used_vmids(site: Site) -> frozenset[int]:
    """VMIDs of every guest on the site's cluster (one /cluster/resources call), the
    `skip` of next_vmid.

    Kept per process. An answer younger than PROXMOX_VMIDS_MAX_AGE is used as it is; an
    older one is used too while a thread of its own asks again, so a create waits for the
    listing (which grows with the cluster) only when there is none yet: the first in a
    process, or after forget_proxmox_vmids. A stale answer, like an empty one when
    Proxmox cannot be reached, is safe: the worker treats "already exists" as a reason to
    take the next VMID (services.container_reassign_vmid), so nothing is taken twice.
    """
    now = time.monotonic()
    with _foreign_lock:
        hit = _foreign_cache.get(site.pk)
        fresh = hit and now - hit[0] < settings.PROXMOX_VMIDS_MAX_AGE
        if hit and (fresh or site.pk in _foreign_refreshing):
            return hit[1]
    node = site.nodes.filter(state=NodeState.ACTIVE).order_by("slot").first()
    if node is None:
        return frozenset()
    if hit is None:
        return _list_guests(site.pk, site.slug, node) or frozenset()
    with _foreign_lock:
        if site.pk in _foreign_refreshing:
            return hit[1]
        _foreign_refreshing.add(site.pk)
    threading.Thread(
        target=_list_guests,
        args=(site.pk, site.slug, node),
        name=f"guests-{site.slug}",
        daemon=True,
    ).start()
    return hit[1]


def _list_guests(site_pk: int, slug: str, node: Node) -> frozenset[int] | None:
    """Ask the cluster for its guests and keep the answer (None: Proxmox did not answer)."""
    from .proxmox import ProxmoxClient

    asked = time.monotonic()
    try:
        vmids = frozenset(int(g["vmid"]) for g in ProxmoxClient.for_node(node).guests())
    except UpstreamError as exc:
        log.warning("cannot list the cluster's guests for site %s: %s", slug, exc)
        return None
    else:
        with _foreign_lock:
            _foreign_cache[site_pk] = (asked, vmids)
        return vmids
    finally:
        with _foreign_lock:
            _foreign_refreshing.discard(site_pk)


def forget_proxmox_vmids(site: Site) -> None:
    """Drop the kept answer: the next create asks the cluster and waits for its answer."""
    with _foreign_lock:
        _foreign_cache.pop(site.pk, None)
