"""A claim from the warm pool (issue #18) that fails after its keys step, with the directory
in play: the access group (real slapd), the realm sync and the grant (the simulator's
LDAP realm and ACLs), and the gateway. The real create job runs in a worker configured
for the directory, against the LaunchPad stack's simulator with guest emulation.

Each failure leaves nothing half-made: no CT with the user's name, the container deleted
(its name, address and MAC free), the member gone with its CT, no access group and no
grant on its VMID."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from auth.backends import PortalLDAPBackend
from containers import services
from containers.models import Container, ContainerStatus, JobStatus
from containers.pool.claim import MEMBER_PARAM
from containers.pool.models import PoolMember, PoolMemberState
from containers.pool.refill import refill_site
from containers.pool.services import pool_target_set
from networking.models import Node, PortMapping, Route
from portal.procs import CeleryWorker
from tests.conftest import wait_job
from tests.functional.accounts import conftest as accounts
from tests.functional.accounts.conftest import job_log, ldap_env
from tests.functional.accounts.slapd import NOT_IN_REALM, PEOPLE_LIST

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.ldap,
    pytest.mark.gateway,
    pytest.mark.django_db(transaction=True),
]

HOSTNAME = "halfmade"

# The identity tests' fixtures: the session's slapd, and this process's settings for it.
slapd = accounts.slapd
ldap_settings = accounts.ldap_settings


@pytest.fixture
def ldap_worker(
    launchpad_stack: Any, own_workers: Any, worker_env: dict[str, str], slapd: Any, run_dir: Path
) -> Iterator[CeleryWorker]:
    """The jobs' worker, with the directory in its environment (the shared ones are paused;
    the session's gateway worker applies)."""
    w = CeleryWorker(
        log_path=run_dir / "celery-pool-ldap.log",
        env={**worker_env, **ldap_env(slapd)},
        name="pool-ldap",
        concurrency=2,
        queues="proxmox",
    ).start()
    yield w
    w.stop()


@pytest.fixture
def stack(launchpad_stack: Any, ldap_settings: Any, ldap_worker: CeleryWorker) -> Any:
    """The stack's simulator knows the directory's people in its LDAP realm."""
    launchpad_stack.sim.admin.set_directory_users(
        "ldap", [p.uid for p in PEOPLE_LIST if p.uid not in NOT_IN_REALM]
    )
    return launchpad_stack


def acl_on(sim: Any, vmid: int) -> list[dict[str, Any]]:
    return [a for a in sim.admin.state()["acl"] if a["path"] == f"/vms/{vmid}"]


def stop_slapd(stack: Any, slapd: Any, local_gateway: Any) -> Callable[[], None]:
    """The directory is down: the access group cannot be made (retried, then given up)."""
    slapd.stop()
    return slapd.start


def fail_realm_sync(stack: Any, slapd: Any, local_gateway: Any) -> None:
    stack.sim.admin.fail_next_tasks("auth-realm-sync", message="boom")


def fail_grant(stack: Any, slapd: Any, local_gateway: Any) -> None:
    stack.sim.admin.fail_next_requests("PUT", r"/access/acl$", status=500, reason="boom")


def stop_nginx(stack: Any, slapd: Any, local_gateway: Any) -> Callable[[], None]:
    """The gateway cannot apply (its nginx is down: retried, then given up)."""
    nginx = local_gateway.servers()[0]
    nginx.stop()
    return nginx.start


# The step that fails, and how. A claim's first wait for the gateway is its keys step (it
# logs in at the address the gateway's apply serves): a gateway that cannot apply fails the
# claim there, and its gateway step, later, only confirms that apply.
FAULTS: dict[str, tuple[str, str, Callable[..., Callable[[], None] | None]]] = {
    "access_group": ("access_group", "directory_unavailable", stop_slapd),
    "realm_sync": ("realm_sync", "proxmox_task_failed", fail_realm_sync),
    "proxmox_acl": ("proxmox_acl", "proxmox_error", fail_grant),
    "gateway": ("ssh_keys", "gateway_unavailable", stop_nginx),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_claim_failing_at_access_or_the_gateway_leaves_nothing_half_made(
    stack: Any, slapd: Any, local_gateway: Any, fault: str
) -> None:
    site = stack.site
    node = Node.objects.get(site=site, name="pve1")
    pool_target_set(template=stack.template, node=node, target=1, actor=None)
    refill_site(site)
    (member,) = PoolMember.objects.filter(state=PoolMemberState.READY)
    bob = PortalLDAPBackend().populate_user("bob")
    step, code, arm = FAULTS[fault]
    undo = arm(stack, slapd, local_gateway)
    try:
        job = services.container_create(owner=bob, hostname=HOSTNAME, template=stack.template)
        assert job.params[MEMBER_PARAM] == member.pk
        done = wait_job(job.pk, timeout=120)
    finally:
        if undo is not None:
            undo()
    assert done.status == JobStatus.FAILED
    failed = [s["name"] for s in done.steps if s["state"] == "failed"]
    assert failed == [step], (failed, job_log(done))
    assert done.error_code == code, (done.error_code, done.error)
    # The configured CT was destroyed, and its member with it.
    c = Container.objects.get(pk=done.container_id)
    assert c.status == ContainerStatus.DELETED  # its name, address and MAC are free
    assert not Route.objects.filter(container=c).exists()
    assert not PortMapping.objects.filter(container=c).exists()
    guests = {int(g["vmid"]): g for g in stack.sim.admin.guests()}
    assert member.vmid not in guests
    assert not any(g["conf"].get("hostname") == HOSTNAME for g in guests.values()), guests
    assert not PoolMember.objects.filter(pk=member.pk).exists()
    # No access is left behind: no directory group, no grant on its VMID.
    assert slapd.group(f"ct-{HOSTNAME}") is None
    assert acl_on(stack.sim, c.vmid) == []
    # The next create of the same name (a normal one: the pool is empty) runs, with access.
    again = wait_job(
        services.container_create(owner=bob, hostname=HOSTNAME, template=stack.template).pk,
        timeout=120,
    )
    assert again.status == JobStatus.SUCCEEDED, job_log(again)
    assert slapd.group(f"ct-{HOSTNAME}")["memberUid"] == ["bob"]
    assert [a["ugid"] for a in acl_on(stack.sim, again.container.vmid)] == ["bob@ldap"]
