"""Allocation of gateway ports and names: race-free, bounded, released on delete.

The case through the session's gateway; the others are in
tests/unit/networking/test_ports.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from containers import services as containers
from containers.models import ContainerStatus
from networking import publishing
from networking.models import PortMapping, Route
from tests.fixtures.networking import apply, create, https, resolve, stream_conf

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.gateway
def test_delete_releases_everything_and_the_next_apply_removes_names_and_ports(
    gw_site: Any, local_gateway: Any, stand_ins: Any
) -> None:
    from tests.functional.networking.test_routing import serve

    web = create(gw_site, "web")
    serve(stand_ins, web)
    extra = publishing.port_mapping_add(container=web, container_port=5432, name="db")
    ssh = web.port_mappings.get(name="ssh").external_port
    apply(gw_site)
    assert https(local_gateway, "web.apps.example.test").status == 200
    assert resolve(local_gateway, "web.cluster.example.test") == [web.ip]

    containers.container_set_status(container=web, to=ContainerStatus.DELETING)
    assert containers.container_set_status(container=web, to=ContainerStatus.DELETED)
    assert not Route.objects.filter(container=web).exists()
    assert not PortMapping.objects.filter(container=web).exists()
    rev = apply(gw_site)
    assert rev.counts["routes"] == 0 and rev.counts["port_mappings"] == 0
    assert https(local_gateway, "web.apps.example.test").status == 404
    assert resolve(local_gateway, "web.cluster.example.test") == []
    stream = stream_conf(local_gateway)
    assert f":{ssh};" not in stream and f":{extra.external_port};" not in stream
    assert web.mac not in (local_gateway.paths().root / "dnsmasq" / "dhcp-hosts").read_text()
    # The name, the address and the ports go to the next container.
    again = create(gw_site, "web")
    assert again.ip == web.ip
    assert again.port_mappings.get(name="ssh").external_port == ssh
