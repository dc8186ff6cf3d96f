"""Identity end to end: services -> Redis -> a real Celery worker (configured for the test
directory) -> slapd and the simulator, and back."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from auth.backends import PortalLDAPBackend
from containers import collaborators, services
from portal.procs import CeleryWorker
from tests.conftest import wait_job
from tests.functional.accounts.conftest import job_log, ldap_env

pytestmark = [pytest.mark.e2e, pytest.mark.ldap, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def ldap_worker(
    own_workers: Any, worker_env: dict[str, str], slapd: Any, run_dir: Any
) -> Iterator[CeleryWorker]:
    """A worker of its own (the shared ones are paused), with the directory in its environment."""
    w = CeleryWorker(
        log_path=run_dir / "celery-identity.log",
        env={**worker_env, **ldap_env(slapd)},
        name="identity",
        concurrency=2,
    ).start()
    yield w
    w.stop()


def test_create_collaborate_and_delete_through_the_worker(
    ldap_settings, pve, cluster, slapd, ldap_worker
) -> None:
    backend = PortalLDAPBackend()
    bob, carol = backend.populate_user("bob"), backend.populate_user("carol")
    job = wait_job(
        services.container_create(owner=bob, hostname="e2e", template=cluster.templates.get()).pk
    )
    assert job.status == "succeeded", job_log(job)
    c = job.container
    path = f"/vms/{c.vmid}"
    assert slapd.group("ct-e2e")["memberUid"] == ["bob"]
    assert [a["ugid"] for a in pve.client.acl() if a["path"] == path] == ["bob@ldap"]

    job = wait_job(collaborators.collaborator_add(container=c, username="carol", actor=bob).pk)
    assert job.status == "succeeded", job_log(job)
    assert slapd.group("ct-e2e")["memberUid"] == ["bob", "carol"]
    assert sorted(a["ugid"] for a in pve.client.acl() if a["path"] == path) == [
        "bob@ldap",
        "carol@ldap",
    ]
    assert carol.collaborations.get().container == c

    job = wait_job(services.container_delete(container=c, actor=bob).pk)
    assert job.status == "succeeded", job_log(job)
    assert slapd.group("ct-e2e") is None
    assert [a for a in pve.client.acl() if a["path"] == path] == []
