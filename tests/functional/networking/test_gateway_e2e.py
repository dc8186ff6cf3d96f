"""Create and delete jobs through a real worker: their gateway step waits for the apply
that publishes (or removes) the container, and the real dnsmasq answers accordingly."""

from __future__ import annotations

from typing import Any

import pytest

from containers import services
from networking.models import ConfigRevision
from tests.conftest import wait_job
from tests.factories import UserFactory
from tests.fixtures.networking import resolve, stream_conf

pytestmark = [pytest.mark.e2e, pytest.mark.gateway, pytest.mark.django_db(transaction=True)]


def test_the_create_and_delete_jobs_publish_and_remove_the_container(
    cluster: Any, sim: Any, worker: Any, local_gateway: Any
) -> None:
    owner = UserFactory(username="erin")
    job = wait_job(
        services.container_create(owner=owner, hostname="pub", template=cluster.templates.get()).pk
    )
    assert job.status == "succeeded", job.error
    step = next(s for s in job.steps if s["name"] == "gateway")
    assert step["state"] == "done" and step["generation"] >= 1
    log = "\n".join(e.message for e in job.log_entries.all())
    assert "Publish its name and ports on the gateway" in log and "gateway revision" in log
    c = job.container
    # Already answering when the job says the container is running.
    assert resolve(local_gateway, "pub.cluster.example.test") == [c.ip]
    root = local_gateway.paths().root
    assert "pub.apps.example.test http|" in (root / "nginx" / "routes.map").read_text()
    assert f"{c.mac},{c.ip},pub" in (root / "dnsmasq" / "dhcp-hosts").read_text()
    ssh = c.port_mappings.get(name="ssh").external_port
    assert f"TCP:{ssh} {c.ip}:22;" in stream_conf(local_gateway)
    assert ConfigRevision.objects.filter(
        site=cluster, generation__gte=step["generation"], status__in=["applied", "unchanged"]
    ).exists()

    job = wait_job(services.container_delete(container=c, actor=owner).pk)
    assert job.status == "succeeded", job.error
    assert [s["name"] for s in job.steps][-2:] == ["release", "gateway"]
    assert job.steps[-1]["state"] == "done"
    assert resolve(local_gateway, "pub.cluster.example.test") == []
    assert "pub.apps.example.test" not in (root / "nginx" / "routes.map").read_text()
