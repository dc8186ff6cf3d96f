"""The warm pool's target service, admin and /metrics, without servers (the refill itself
runs against the simulator: tests/functional/containers/test_pool_e2e.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from auth.models import AuditEntry
from containers import quotas, services
from containers.models import PoolMember, PoolTarget
from containers.pool.models import PoolMemberState
from containers.pool.refill import committed_memory_mib, no_room
from containers.pool.services import pool_target_set, pool_vmids
from portal.errors import ValidationFailed
from tests.factories import UserFactory, make_site
from tests.unit.containers.test_monitoring import scrape, value

pytestmark = pytest.mark.django_db


def member(
    pool: PoolTarget, vmid: int, state: str = PoolMemberState.READY, **kw: Any
) -> PoolMember:
    t = pool.template
    return PoolMember.objects.create(
        site=pool.site,
        template=t,
        node=pool.node,
        vmid=vmid,
        volid=t.volid,
        cores=t.default_cores,
        memory_mib=t.default_memory_mib,
        disk_gib=t.default_disk_gib,
        state=state,
        ready_at=timezone.now() - timedelta(hours=3) if state == PoolMemberState.READY else None,
        **kw,
    )


def test_the_target_is_set_through_the_service_and_audited(
    django_capture_on_commit_callbacks,
) -> None:
    site = make_site(None)
    template, node = site.templates.get(), site.nodes.get(name="pve1")
    staff = UserFactory(is_staff=True)
    assert not PoolTarget.objects.exists()  # off by default: no pool at all
    with django_capture_on_commit_callbacks() as callbacks:
        pool = pool_target_set(template=template, node=node, target=2, actor=staff)
    assert pool.target == 2 and pool.site == site
    assert len(callbacks) == 1  # the refill is asked for once the change commits
    entry = AuditEntry.objects.get(action="pool.target")
    assert "target 0 -> 2" in entry.summary
    # The same value again changes nothing and asks for nothing.
    with django_capture_on_commit_callbacks() as callbacks:
        pool_target_set(template=template, node=node, target=2, actor=staff)
    assert callbacks == [] and AuditEntry.objects.filter(action="pool.target").count() == 1


def test_the_target_is_checked() -> None:
    site, other = make_site(None), make_site(None, slug="other", node_names=("x", "y"))
    template = site.templates.get()
    with pytest.raises(ValidationFailed) as err:
        pool_target_set(template=template, node=other.nodes.get(name="x"), target=1, actor=None)
    assert "node" in err.value.field_errors
    with pytest.raises(ValidationFailed) as err:
        pool_target_set(template=template, node=site.nodes.get(name="pve1"), target=51, actor=None)
    assert "target" in err.value.field_errors


def test_members_count_in_no_quota_and_their_vmids_are_no_containers() -> None:
    site = make_site(None)
    owner = UserFactory()
    pool = pool_target_set(
        template=site.templates.get(), node=site.nodes.get(name="pve1"), target=2, actor=None
    )
    member(pool, 101)
    member(pool, 103)
    assert pool_vmids(site) == {101, 103}
    assert quotas.usage_for(owner)[0].containers == 0


def test_the_admin_shows_each_pool(admin_client) -> None:
    site = make_site(None)
    pool = pool_target_set(
        template=site.templates.get(), node=site.nodes.get(name="pve1"), target=3, actor=None
    )
    member(pool, 101)
    member(pool, 103)
    member(pool, 105, state=PoolMemberState.CREATING)
    PoolTarget.objects.filter(pk=pool.pk).update(hits=3, misses=1, last_build_seconds=12.5)
    page = admin_client.get("/admin/containers/pooltarget/").content.decode()
    assert "2 (+1 being made)" in page
    assert "75% (3 of 4)" in page
    assert "12.5 s" in page
    assert "3\xa0hours" in page or "3 hours" in page
    # The target changes through the service (audited).
    url = f"/admin/containers/pooltarget/{pool.pk}/change/"
    response = admin_client.post(url, {"target": "0"})
    assert response.status_code == 302, response.content
    assert PoolTarget.objects.get(pk=pool.pk).target == 0
    assert AuditEntry.objects.filter(action="pool.target", summary__contains="3 -> 0").exists()


def test_metrics_show_each_pool(client) -> None:
    site = make_site(None)
    pool = pool_target_set(
        template=site.templates.get(), node=site.nodes.get(name="pve2"), target=2, actor=None
    )
    member(pool, 100)
    PoolTarget.objects.filter(pk=pool.pk).update(hits=4, misses=2, last_build_seconds=1.5)
    m = scrape(client)
    labels = {"site": site.slug, "template": "debian-12", "node": "pve2"}
    assert value(m["portal_pool_size"], **labels) == 1
    assert value(m["portal_pool_target"], **labels) == 2
    assert value(m["portal_pool_hits"], **labels) == 4
    assert value(m["portal_pool_misses"], **labels) == 2
    assert value(m["portal_pool_refill_seconds"], **labels) == 1.5


def test_a_claimed_member_counts_once_in_its_nodes_memory(settings) -> None:
    """The claimed member's VMID and CT are the new container's: its memory is the
    container's (here larger), counted once, not once more as a member."""
    settings.POOL_NODE_MAX_MEMORY_COMMIT = 1.0
    site = make_site(None)
    template, node = site.templates.get(), site.nodes.get(name="pve1")
    pool = pool_target_set(template=template, node=node, target=2, actor=None)
    each = template.default_memory_mib
    member(pool, 101)
    member(pool, 103)
    job = services.container_create(
        owner=UserFactory(), hostname="claimer", template=template, memory_mib=2 * each
    )
    c = job.container
    assert (c.vmid, c.node_id) == (101, node.pk)  # it took the first member
    assert PoolMember.objects.get(vmid=101).state == PoolMemberState.CLAIMED
    assert committed_memory_mib(node) == 2 * each + each  # the container, and member 103
    # Room for exactly one more member: with the claimed one counted twice there was none.
    node.max_memory = 4 * each * 1024 * 1024
    assert no_room(node, each) == ""
    node.max_memory -= 1
    assert no_room(node, each) == "its memory would be 100% committed"
