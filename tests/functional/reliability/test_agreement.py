"""The agreement check itself: each kind of disagreement is caught (so the matrix can fail)."""

from __future__ import annotations

import pytest

from containers import services
from containers.models import Container, Job
from networking.models import Route
from tests.factories import UserFactory
from tests.functional.reliability.agreement import disagreements

pytestmark = [pytest.mark.reliability, pytest.mark.django_db(transaction=True)]


def _container(site, hostname: str) -> Container:
    job = services.container_create(
        owner=UserFactory(), hostname=hostname, template=site.templates.get()
    )
    return Container.objects.select_related("node").get(pk=job.container_id)


def test_each_disagreement_is_found(site, fault_sim, monkeypatch) -> None:
    # These jobs must never run: a worker left by an earlier test would make the CTs real.
    monkeypatch.setattr("containers.tasks.enqueue_job", lambda job_id: None)
    assert disagreements(site, fault_sim, baseline=site.baseline) == []
    # A live container whose CT is missing, and its job never ran.
    ghost = _container(site, "ghost")
    # A CT tagged for a container the portal deleted.
    gone = _container(site, "gone")
    services.container_set_status(container=gone, to="deleted")
    fault_sim.admin.create_foreign_guest(
        gone.node.name, gone.vmid, name="gone", tags=f"cluster-portal;ct-{gone.pk}"
    )
    # A CT nobody knows, tagged as ours.
    fault_sim.admin.create_foreign_guest(
        "pve1", 9001, name="stray", tags="cluster-portal;ct-999999"
    )
    # A route left on the deleted container.
    Route.objects.create(site=site, container=gone, name="left", subdomain="left-gone")
    # A failed job without a clear message.
    Job.objects.filter(container=ghost).update(status="failed", error="oops", error_code="")
    found = "\n".join(disagreements(site, fault_sim, baseline=site.baseline))
    assert f"no CT {ghost.vmid} is on Proxmox" in found
    assert f"CT {gone.vmid} on {gone.node.name} belongs to container {gone.pk}" in found
    assert "CT 9001 on pve1" in found and "is unknown" in found
    assert "route left-gone is on deleted container" in found
    assert "failed without a clear message: 'oops'" in found
    assert f"create job {Job.objects.get(container=gone).pk} is still queued" in found
