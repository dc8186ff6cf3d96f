"""The Wazuh sweep against the simulator (Proxmox over HTTPS) and the Wazuh double (the
manager's API over HTTPS): it removes the agents of deleted containers that Proxmox no
longer holds, and nothing else; it fails closed when a node, Proxmox or the manager
does not answer, or when the portal's record is not sure; a dry run changes nothing.

Containers are rows made straight in the database (no create job: the sweep reads rows
and Proxmox, not jobs); a live one has its CT in the simulator, tagged as the portal tags
its own. Each test's CTs are removed from the shared simulator at its end.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.test import Client

from auth.models import AuditEntry
from containers.models import Container, ContainerStatus, Job, JobKind, JobStatus
from containers.tasks import sweep_wazuh_agents
from containers.wazuh.models import AgentStatus, WazuhAgent, WazuhSweepRun
from containers.wazuh.sweep import wazuh_sweep_all, wazuh_sweep_site
from networking.models import Site
from portal.celery import app
from tests.factories import SiteFactory, UserFactory
from tests.fixtures.wazuh_double import WazuhDouble
from tests.fixtures.wazuh_wire import MANAGER_NAME

pytestmark = [pytest.mark.e2e, pytest.mark.django_db]


class World:
    """A site on the simulator with a manager on the double, and helpers that make a
    container (with its CT if live) and its agent (row and manager side) together."""

    def __init__(self, site: Site, sim: Any, wazuh: WazuhDouble) -> None:
        self.site, self.sim, self.wazuh = site, sim, wazuh
        self.manager = wazuh.configure(site)
        self.owner = UserFactory()
        self.nodes = {n.name: n for n in site.nodes.all()}
        self.made_cts: list[int] = []
        self._used = {int(g["vmid"]) for g in sim.admin.guests()}
        self._made = 0

    def vmid(self) -> int:
        """A VMID no guest of the shared simulator has, far above the portal's own."""
        vmid = next(v for v in range(70000, 80000) if v not in self._used)
        self._used.add(vmid)
        return vmid

    def container(
        self, status: str = ContainerStatus.RUNNING, node: str = "pve1", ct: bool | None = None
    ) -> Container:
        """A container row; with its CT in the simulator if live (or `ct` says so)."""
        vmid, i = self.vmid(), self._made
        self._made += 1
        c = Container.objects.create(
            site=self.site,
            node=self.nodes[node],
            vmid=vmid,
            hostname=f"sweep{vmid}",
            owner=self.owner,
            template=self.site.templates.get(),
            cores=1,
            memory_mib=512,
            swap_mib=512,
            disk_gib=4,
            ip=f"10.77.{i // 250}.{i % 250 + 1}",
            mac=f"bc:24:11:77:{i // 256:02x}:{i % 256:02x}",
            status=status,
        )
        if ct if ct is not None else status != ContainerStatus.DELETED:
            self.ct(node, vmid, name=c.hostname, tags=f"cluster-portal;ct-{c.pk}")
        return c

    def ct(self, node: str, vmid: int, *, name: str, tags: str | None = None) -> None:
        self.sim.admin.create_foreign_guest(node, vmid, name=name, tags=tags, status="running")
        self.made_cts.append(vmid)

    def agent(self, c: Container | None, status: str = AgentStatus.ACTIVE, **kw: Any) -> WazuhAgent:
        """The portal's row of an agent it enrolled for `c`, and that agent on the manager."""
        name = kw.pop("name", None) or f"{self.site.slug}-{c.vmid}-{c.pk}"  # type: ignore[union-attr]
        on_manager = self.wazuh.add_agent(name)
        return WazuhAgent.objects.create(
            site=self.site,
            container=c,
            name=name,
            agent_id=kw.pop("agent_id", on_manager.id),
            status=status,
            groups=["default"],
            **kw,
        )

    def on_manager(self, name: str) -> bool:
        return self.wazuh.agent_named(name) is not None

    def deletes(self) -> list[str]:
        """The agents_list of every DELETE /agents the manager was sent."""
        return [c.query["agents_list"] for c in self.wazuh.calls if c.method == "DELETE"]


@pytest.fixture
def world(cluster: Site, sim: Any, wazuh: WazuhDouble) -> Iterator[World]:
    w = World(cluster, sim, wazuh)
    yield w
    sim.admin.reset_faults()
    sim.admin.remove_guests(w.made_cts)


def state(row: WazuhAgent) -> str:
    row.refresh_from_db()
    return row.status


def test_removes_a_deleted_containers_agent_and_nothing_it_did_not_enrol(
    world: World, django_capture_on_commit_callbacks: Any, deliver_now: Any
) -> None:
    UserFactory(username="op", email="op@example.test", is_staff=True)
    gone = world.agent(world.container(ContainerStatus.DELETED))
    live = world.agent(world.container(ContainerStatus.RUNNING, node="pve2"))
    stopped = world.agent(world.container(ContainerStatus.STOPPED))
    # Agents the portal has no row for: the hypervisors', the gateway's, one by hand.
    others = ["pve1", "pve2", "gateway", "hand-made-web01", "local-99999-99999"]
    for name in others:
        world.wazuh.add_agent(name, status="disconnected")

    with django_capture_on_commit_callbacks(execute=True):
        run = wazuh_sweep_site(site=world.site)

    assert run is not None and not run.errors
    assert [i["name"] for i in run.removed] == [gone.name]
    assert run.removed[0]["how"] == "deleted" and run.kept == [] and run.live == 2
    assert world.deletes() == [gone.agent_id]  # one DELETE, naming only that agent
    assert not world.on_manager(gone.name)
    gone.refresh_from_db()
    assert gone.status == AgentStatus.REMOVED and gone.removed_at is not None
    assert state(live) == state(stopped) == AgentStatus.ACTIVE
    for name in [live.name, stopped.name, *others, MANAGER_NAME]:
        assert world.on_manager(name)
    assert world.wazuh.agents["000"].name == MANAGER_NAME
    # One login, one paged list, one delete; one Proxmox call for the whole site.
    assert world.wazuh.count("POST", "/security/user/authenticate") == 1
    assert world.wazuh.count("GET", "/agents") == 1
    [listing] = [c for c in world.wazuh.calls if (c.method, c.path) == ("GET", "/agents")]
    assert listing.query["q"] == "id!=000"  # the manager's own agent is not even listed
    # Operators are told, and the removal is audited.
    assert [m.subject for m in mail.outbox] == [
        f"[Cluster Portal] Wazuh sweep of {world.site.name}: 1 removed, 0 kept"
    ]
    assert gone.name in mail.outbox[0].body
    entry = AuditEntry.objects.get(action="wazuh.sweep")
    assert entry.actor_name == "portal" and entry.changes["removed"] == [gone.name]

    # The next day: nothing left to do, nobody told again.
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        again = wazuh_sweep_site(site=world.site)
    assert again is not None and again.removed == [] and again.kept == []
    assert world.deletes() == [gone.agent_id] and mail.outbox == []


def test_a_node_that_does_not_answer_keeps_every_agent(world: World) -> None:
    on_pve1 = world.agent(world.container(ContainerStatus.DELETED, node="pve1"))
    on_pve2 = world.agent(world.container(ContainerStatus.DELETED, node="pve2"))
    world.sim.admin.set_node_offline("pve1")

    run = wazuh_sweep_site(site=world.site)

    assert run is not None and run.removed == []
    assert {i["name"] for i in run.kept} == {on_pve1.name, on_pve2.name}
    assert all("pve1 (offline)" in i["reason"] for i in run.kept)
    assert run.errors and "node(s) not answering: pve1 (offline)" in run.errors[0]
    assert world.deletes() == []
    assert world.on_manager(on_pve1.name) and world.on_manager(on_pve2.name)
    assert state(on_pve1) == state(on_pve2) == AgentStatus.ACTIVE

    # The node answers again: both go.
    world.sim.admin.set_node_offline("pve1", offline=False)
    run = wazuh_sweep_site(site=world.site)
    assert run is not None and {i["name"] for i in run.removed} == {on_pve1.name, on_pve2.name}


def test_a_node_marked_offline_a_silent_proxmox_or_a_partial_answer_keeps_every_agent(
    world: World,
) -> None:
    row = world.agent(world.container(ContainerStatus.DELETED))
    world.site.nodes.filter(name="pve2").update(state="offline")
    run = wazuh_sweep_site(site=world.site)
    assert run is not None and run.removed == [] and "pve2 (offline since" in run.errors[0]

    world.site.nodes.update(state="active")
    world.sim.admin.fail_next_requests("GET", r"^/cluster/resources", count=2, status=500)
    run = wazuh_sweep_site(site=world.site)
    assert run is not None and run.removed == []
    assert run.errors[0].startswith("Proxmox did not answer (pve2: ")
    assert [i["reason"][:38] for i in run.kept] == ["Proxmox cannot vouch for its absence: "]

    # An answer that lacks a live container (a token that cannot see every guest):
    # it cannot vouch that the deleted one's VMID is free either.
    unseen = world.container(ContainerStatus.RUNNING, ct=False)
    run = wazuh_sweep_site(site=world.site)
    assert run is not None and run.removed == []
    assert run.errors == [
        f"Proxmox's list lacks live container(s) {unseen.hostname}: it cannot vouch for absences"
    ]
    assert world.deletes() == [] and state(row) == AgentStatus.ACTIVE


def test_a_vmid_proxmox_still_lists_keeps_the_agent_unless_another_guest_took_it(
    world: World,
) -> None:
    # Deleted in the portal, but its CT is still there (a delete that did not finish).
    still = world.container(ContainerStatus.DELETED, ct=True)
    # Deleted, and its VMID now holds someone else's guest (made in the Proxmox UI) ...
    reused = world.container(ContainerStatus.DELETED)
    world.ct("pve1", reused.vmid, name="someone-else")
    # ... or another container of the portal's.
    taken = world.container(ContainerStatus.DELETED)
    world.ct("pve1", taken.vmid, name="other", tags=f"cluster-portal;ct-{taken.pk + 1000}")
    # Deleted, and its VMID holds an untagged guest of the same name: it may be it.
    lookalike = world.container(ContainerStatus.DELETED)
    world.ct("pve1", lookalike.vmid, name=lookalike.hostname)
    # Deleted, and its VMID holds a locked guest (a restore, a migration): next time.
    locked = world.container(ContainerStatus.DELETED)
    world.ct("pve2", locked.vmid, name="restoring")
    world.sim.admin.hold_lock(locked.vmid, "restore", flock=False)
    rows = {c.pk: world.agent(c) for c in (still, reused, taken, lookalike, locked)}

    run = wazuh_sweep_site(site=world.site)

    assert run is not None and not run.errors
    assert {i["container"] for i in run.removed} == {reused.pk, taken.pk}
    kept = {i["container"]: i["reason"] for i in run.kept}
    assert kept[still.pk] == (
        f"VMID {still.vmid} on pve1 still holds {still.hostname}'s CT; remove it first "
        "(the reconciler reports it)"
    )
    assert "without the portal's tags: it may be it" in kept[lookalike.pk]
    assert kept[locked.pk] == f"VMID {locked.vmid} on pve2 is locked (restore); judged next time"
    assert world.on_manager(rows[still.pk].name) and world.on_manager(rows[lookalike.pk].name)
    assert not world.on_manager(rows[reused.pk].name)


def test_removal_pending_leftovers_wait_for_the_manager_and_then_go(
    world: World, django_capture_on_commit_callbacks: Any, deliver_now: Any
) -> None:
    UserFactory(username="op", email="op@example.test", is_staff=True)
    leftover = world.agent(world.container(ContainerStatus.DELETED), AgentStatus.REMOVAL_PENDING)
    already = world.agent(world.container(ContainerStatus.DELETED), AgentStatus.REMOVAL_PENDING)
    world.wazuh.agents.pop(already.agent_id)  # someone removed it on the manager by hand
    world.wazuh.set_down()
    try:
        with django_capture_on_commit_callbacks(execute=True):
            run = wazuh_sweep_site(site=world.site)
    finally:
        world.wazuh.set_down(False)

    assert run is not None and run.removed == []
    assert run.errors[0].startswith("the Wazuh manager did not answer: cannot reach")
    assert {i["reason"] for i in run.kept} == {
        "the Wazuh manager did not answer; nothing was removed"
    }
    assert state(leftover) == state(already) == AgentStatus.REMOVAL_PENDING
    assert "nothing removed" not in run.summary and "did not answer" in run.summary
    assert [m.subject for m in mail.outbox] == [
        f"[Cluster Portal] Wazuh sweep of {world.site.name}: 0 removed, 2 kept, errors"
    ]

    run = wazuh_sweep_site(site=world.site)
    assert run is not None and not run.errors and run.kept == []
    assert {(i["name"], i["how"]) for i in run.removed} == {
        (leftover.name, "deleted"),
        (already.name, "gone"),
    }
    assert world.deletes() == [leftover.agent_id]
    assert state(leftover) == state(already) == AgentStatus.REMOVED


def test_a_token_that_expires_mid_sweep_is_replaced_once_and_the_sweep_completes(
    world: World,
) -> None:
    gone = [world.agent(world.container(ContainerStatus.DELETED)) for _ in range(3)]
    # The manager's clock passes the token's lifetime once the list is answered: the
    # DELETE that follows is refused, the client logs in again once and repeats it.
    world.wazuh.advance_after("GET", "/agents", seconds=901)
    run = wazuh_sweep_site(site=world.site)
    assert run is not None and not run.errors and run.kept == []
    assert sorted(i["name"] for i in run.removed) == sorted(row.name for row in gone)
    calls = [(c.method, c.path, c.status) for c in world.wazuh.calls]
    assert calls == [
        ("POST", "/security/user/authenticate", 200),
        ("GET", "/agents", 200),
        ("DELETE", "/agents", 401),
        ("POST", "/security/user/authenticate", 200),
        ("DELETE", "/agents", 200),
    ]
    assert world.deletes() == [",".join(sorted(row.agent_id for row in gone))] * 2
    assert all(state(row) == AgentStatus.REMOVED for row in gone)
    assert not any(world.on_manager(row.name) for row in gone)


def test_an_unsure_portal_record_keeps_the_agent(world: World) -> None:
    live = world.agent(world.container(ContainerStatus.RUNNING), AgentStatus.REMOVAL_PENDING)
    creating = world.agent(
        world.container(ContainerStatus.PROVISIONING, ct=False), AgentStatus.REMOVAL_PENDING
    )
    deleting = world.container(ContainerStatus.DELETED)
    Job.objects.create(
        container=deleting, kind=JobKind.DELETE, status=JobStatus.QUEUED, actor=world.owner
    )
    busy = world.agent(deleting)
    orphan = world.agent(None, AgentStatus.REMOVAL_PENDING, name="local-1-1")
    # Someone enrolled again under the portal's name: the manager's id is not the one kept.
    reenrolled = world.agent(world.container(ContainerStatus.DELETED), agent_id="999")

    run = wazuh_sweep_site(site=world.site)

    assert run is not None and run.removed == [] and not run.errors
    kept = {i["name"]: i["reason"] for i in run.kept}
    assert kept == {
        live.name: f"marked for removal, but {live.container.hostname} is running in the portal",
        creating.name: f"marked for removal, but {creating.container.hostname}'s create is "
        "unfinished",
        busy.name: f"a job is running on {deleting.hostname}; judged next time",
        orphan.name: "no container is recorded for it: the portal cannot vouch for its end",
        reenrolled.name: f"the manager's agent {reenrolled.name} is "
        f"{world.wazuh.agent_named(reenrolled.name).id}, the portal enrolled 999: enrolled "
        "again by someone else? left alone",
    }
    assert world.deletes() == []


def test_a_dry_run_reports_and_changes_nothing(
    world: World, django_capture_on_commit_callbacks: Any, deliver_now: Any
) -> None:
    UserFactory(username="op", email="op@example.test", is_staff=True)
    gone = world.agent(world.container(ContainerStatus.DELETED))
    world.agent(world.container(ContainerStatus.RUNNING))

    with django_capture_on_commit_callbacks(execute=True):
        run = wazuh_sweep_site(site=world.site, dry_run=True)

    assert run is not None and run.dry_run
    assert [i["name"] for i in run.removed] == [gone.name]
    assert run.summary.startswith(f"dry run; would remove 1 ({gone.name})")
    assert world.deletes() == [] and world.on_manager(gone.name)
    assert state(gone) == AgentStatus.ACTIVE
    assert mail.outbox == [] and not AuditEntry.objects.filter(action="wazuh.sweep").exists()


def test_the_command_prints_the_report_and_fails_when_a_party_is_silent(world: World) -> None:
    gone = world.agent(world.container(ContainerStatus.DELETED))
    live = world.container(ContainerStatus.RUNNING)
    world.agent(live)
    still = world.container(ContainerStatus.DELETED, ct=True)
    kept = world.agent(still)

    out = io.StringIO()
    call_command("wazuh", "sweep", "--dry-run", "--site", world.site.slug, stdout=out)
    lines = out.getvalue().splitlines()
    run = WazuhSweepRun.objects.get()
    assert lines[0] == f"{world.site.slug}: {run.summary} (report {run.pk})"
    assert run.summary.startswith(f"dry run; would remove 1 ({gone.name}); kept 1; 1 of live")
    g = gone.container
    assert lines[1] == (
        f"  would remove {gone.name:<28} {g.hostname} (VMID {g.vmid}, container {g.pk})"
    )
    assert lines[2].split()[:2] == ["kept", kept.name]
    assert f"VMID {still.vmid} on pve1 still holds" in lines[2] and len(lines) == 3
    assert world.on_manager(gone.name)

    out = io.StringIO()
    call_command("wazuh", "sweep", stdout=out)
    assert f"  removed      {gone.name}" in out.getvalue()
    assert not world.on_manager(gone.name)

    world.agent(world.container(ContainerStatus.DELETED))
    world.wazuh.set_down()
    out = io.StringIO()
    try:
        with pytest.raises(SystemExit) as exit_:
            call_command("wazuh", "sweep", stdout=out)
    finally:
        world.wazuh.set_down(False)
    assert exit_.value.code == 1
    assert "  error        the Wazuh manager did not answer: cannot reach" in out.getvalue()

    with pytest.raises(CommandError, match="has no enabled Wazuh manager"):
        call_command("wazuh", "sweep", "--site", SiteFactory(slug="other", name="Other").slug)
    with pytest.raises(CommandError, match="no site 'nowhere'"):
        call_command("wazuh", "sweep", "--site", "nowhere")


def test_the_daily_task_sweeps_sites_with_a_manager_and_the_admin_shows_reports(
    world: World, settings: Any
) -> None:
    gone = world.agent(world.container(ContainerStatus.DELETED))
    quiet = SiteFactory(slug="quiet", name="Quiet")  # no manager: never asked, no report
    old = WazuhSweepRun.objects.create(site=world.site, summary="long ago")
    WazuhSweepRun.objects.filter(pk=old.pk).update(started_at="2000-01-01T00:00:00Z")
    schedule = app.conf.beat_schedule["sweep-wazuh-agents"]
    assert (schedule["task"], schedule["schedule"]) == ("containers.sweep_wazuh_agents", 86400.0)

    summaries = sweep_wazuh_agents()

    assert list(summaries) == [world.site.slug]
    assert summaries[world.site.slug].startswith(f"removed 1 ({gone.name})")
    assert not WazuhSweepRun.objects.filter(site=quiet).exists()
    assert not WazuhSweepRun.objects.filter(pk=old.pk).exists()  # past WAZUH_SWEEP_KEEP_DAYS
    assert wazuh_sweep_all(dry_run=True)[0].dry_run

    staff = Client()
    staff.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    run = WazuhSweepRun.objects.filter(dry_run=False).get()
    listing = staff.get("/admin/containers/wazuhsweeprun/").content.decode()
    assert run.summary in listing
    page = staff.get(f"/admin/containers/wazuhsweeprun/{run.pk}/change/").content.decode()
    assert f"<strong>{gone.name}</strong> ({gone.container.hostname}, VMID" in page
    assert 'name="_save"' not in page
    assert staff.get("/admin/containers/wazuhsweeprun/add/").status_code == 403
