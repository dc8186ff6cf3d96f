"""Fixtures of the identity tests: a private slapd, the LDAP settings pointing at it,
the job runner run in-process, and a clean slate of ACLs on the simulator."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need_binary
from tests.functional.accounts.slapd import NOT_IN_REALM, PEOPLE_LIST, PORTAL_DN, PORTAL_PW, Slapd

STAFF_GROUP = "cn=portal-admins,ou=groups,dc=example,dc=test"


@pytest.fixture(scope="session")
def slapd(run_dir: Path) -> Iterator[Slapd]:
    """One slapd for the session, on a free loopback port, loaded with people and groups."""
    server = Slapd(run_dir / "slapd", slapd=need_binary("slapd"), slapadd=need_binary("slapadd"))
    server.start()
    yield server
    server.stop()


def ldap_env(server: Slapd) -> dict[str, str]:
    """The same configuration as environment variables, for worker processes."""
    return {
        "AUTH_LDAP_SERVER_URI": server.uri,
        "AUTH_LDAP_BIND_DN": PORTAL_DN,
        "AUTH_LDAP_BIND_PASSWORD": PORTAL_PW,
        "AUTH_LDAP_STAFF_GROUP": STAFF_GROUP,
        "AUTH_LDAP_TIMEOUT": "2",
    }


@pytest.fixture
def ldap_settings(settings: Any, slapd: Slapd) -> Iterator[Any]:
    """Point the portal at the test directory (login and directory writes)."""
    from auth import directory

    settings.AUTH_LDAP_SERVER_URI = slapd.uri
    settings.AUTH_LDAP_BIND_DN = PORTAL_DN
    settings.AUTH_LDAP_BIND_PASSWORD = PORTAL_PW
    settings.AUTH_LDAP_STAFF_GROUP = STAFF_GROUP
    settings.AUTH_LDAP_USER_FLAGS_BY_GROUP = {"is_staff": STAFF_GROUP}
    settings.AUTH_LDAP_TIMEOUT = 2.0
    directory.close_all()
    yield settings
    directory.close_all()
    slapd.clear_containers()
    slapd.clear_ssh_keys()


@pytest.fixture
def ldap_users(ldap_settings: Any, db: None) -> dict[str, Any]:
    """Django users for everyone in the directory, created from it (as a first login would)."""
    from auth.backends import PortalLDAPBackend

    backend = PortalLDAPBackend()
    return {p.uid: backend.populate_user(p.uid) for p in PEOPLE_LIST}


def run_job(job: Any, *, rounds: int = 30) -> Any:
    """Run a job with the real runner in this process, as the Celery task would (retries
    included: a RetryLater is waited out and the job run again)."""
    from containers import jobs
    from containers.models import Job

    job_id = str(getattr(job, "pk", job))
    for _ in range(rounds):
        try:
            jobs.run(job_id, worker="tests")
        except jobs.RetryLater as later:
            time.sleep(min(later.countdown, 0.3))
            continue
        found = Job.objects.get(pk=job_id)
        if found.is_final:
            return found
    raise AssertionError(f"job {job_id} did not finish in {rounds} rounds")


def job_log(job: Any) -> str:
    return "\n".join(f"[{e.level}] {e.step}: {e.message}" for e in job.log_entries.order_by("id"))


@pytest.fixture
def pve(sim: Any, cluster: Any) -> Iterator[Any]:
    """The simulator with no PVEVMUser grants left from other tests, and a directory of
    everyone for its LDAP realm (what a realm sync finds)."""
    from containers.proxmox import ProxmoxClient

    client = ProxmoxClient.for_node(cluster.nodes.order_by("slot").first())

    def clean() -> None:
        for entry in client.acl():
            if entry["path"].startswith("/vms/") and entry["type"] == "user":
                client.grant_acl(
                    path=entry["path"], role=entry["roleid"], users=entry["ugid"], delete=True
                )

    clean()
    sim.admin.set_directory_users("ldap", [p.uid for p in PEOPLE_LIST if p.uid not in NOT_IN_REALM])
    sim.client = client
    yield sim
    clean()
