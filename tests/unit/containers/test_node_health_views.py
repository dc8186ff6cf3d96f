"""A node the health checks marked offline is shown on the dashboard, the create form,
its containers' pages and the admin's node list."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from containers import health, services
from networking.models import Node, NodeState
from tests.factories import UserFactory, make_site

pytestmark = pytest.mark.django_db

NOTICE = "pve1 is not answering"


@pytest.fixture
def site():
    return make_site(None)


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_an_offline_node_is_shown_where_users_look(site) -> None:
    alice = UserFactory(username="alice")
    made = [
        services.container_create(owner=alice, hostname=f"ct{i}", template=site.templates.get())
        for i in range(2)
    ]
    by_node = {job.container.node.name: job.container for job in made}
    assert set(by_node) == {"pve1", "pve2"}
    client = client_for(alice)
    assert NOTICE not in client.get("/").content.decode()

    pve1 = Node.objects.get(name="pve1")
    assert health.node_mark_offline(node=pve1, reason="595 Connection refused")
    assert pve1.state == NodeState.OFFLINE and pve1.offline_since is not None

    dashboard = client.get("/").content.decode()
    assert NOTICE in dashboard and "New containers go to the other nodes" in dashboard
    assert "595" not in dashboard  # the cause is for operators
    assert NOTICE in client.get("/containers/new/").content.decode()
    page = client.get(f"/containers/{by_node['pve1'].pk}/").content.decode()
    assert NOTICE in page and "This container's actions wait until it is back" in page
    assert NOTICE not in client.get(f"/containers/{by_node['pve2'].pk}/").content.decode()

    staff = client_for(UserFactory(is_staff=True, is_superuser=True))
    assert "(595 Connection refused)" in staff.get("/").content.decode()
    admin_list = staff.get("/admin/networking/node/").content.decode()
    assert re.search(r"Offline for \d+ s: 595 Connection refused", admin_list)

    assert health.node_mark_active(node=pve1)
    assert NOTICE not in client.get("/").content.decode()


def test_marking_never_overrides_maintenance(site) -> None:
    pve1 = Node.objects.get(name="pve1")
    Node.objects.filter(pk=pve1.pk).update(state=NodeState.MAINTENANCE)
    assert not health.node_mark_offline(node=pve1, reason="595 Connection refused")
    assert pve1.state == NodeState.MAINTENANCE
    assert not health.node_mark_active(node=pve1)
    assert Node.objects.get(pk=pve1.pk).state == NodeState.MAINTENANCE


def test_placement_skips_an_offline_nodes_slot(site) -> None:
    health.node_mark_offline(node=Node.objects.get(name="pve1"), reason="595 Connection refused")
    owner = UserFactory()
    for i in range(3):
        c = services.container_create(
            owner=owner, hostname=f"p{i}", template=site.templates.get()
        ).container
        assert c.node.name == "pve2" and c.vmid % 2 == 0
