"""Site and node edits in the admin go through site_update / node_update: validated,
audited, and exactly one gateway apply when a rendered value changed, after which the
real dnsmasq serves the new value."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from auth.models import AuditEntry
from networking import site_services
from networking.gateway import apply_site
from networking.models import GatewayState, Node, Site
from portal.errors import ValidationFailed
from tests.admin_forms import post_change
from tests.factories import UserFactory
from tests.fixtures.networking import resolve

pytestmark = [pytest.mark.gateway, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def staff() -> Client:
    client = Client()
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def applies(gw_site: Site, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The site ids of the applies queued (run by the test, in this process)."""
    queued: list[int] = []
    monkeypatch.setattr(
        "networking.services.enqueue_apply", lambda site_id, slug=None: queued.append(site_id)
    )
    return queued


def requested(site: Site) -> int:
    state = GatewayState.objects.filter(site=site).first()
    return state.requested if state else 0


def live_file(gw: Any, name: str) -> str:
    return (gw.paths().root / "dnsmasq" / name).read_text()


def test_a_site_edit_applies_the_new_values_once(
    gw_site: Site, applies: list[int], local_gateway: Any, staff: Client
) -> None:
    before = requested(gw_site)
    url = f"/admin/networking/site/{gw_site.pk}/change/"
    response = post_change(
        staff, url, dns_forwarders="192.0.2.53", internal_domain="renamed.example.test"
    )
    assert response.status_code == 200 and response.redirect_chain, response.content[:500]
    assert applies == [gw_site.pk] and requested(gw_site) == before + 1  # exactly one
    entry = AuditEntry.objects.get(action="site.update", object_id=str(gw_site.pk))
    assert entry.actor.username == "root"
    assert entry.changes == {
        "dns_forwarders": "192.0.2.53",
        "internal_domain": "renamed.example.test",
    }

    revision = apply_site(Site.objects.get(pk=gw_site.pk), coalesce=False).revision
    assert revision is not None and revision.status == "applied", revision.error
    assert "server=192.0.2.53 " in live_file(local_gateway, "dnsmasq.conf")
    assert "local=/renamed.example.test/" in live_file(local_gateway, "dnsmasq.conf")
    assert resolve(local_gateway, "gateway.renamed.example.test") == [gw_site.gateway_ip]

    # A value the gateway does not render is saved and audited without an apply.
    post_change(staff, url, bridge="vmbr1")
    assert Site.objects.get(pk=gw_site.pk).bridge == "vmbr1"
    assert applies == [gw_site.pk]


def test_a_node_address_edit_applies_the_new_address_once(
    gw_site: Site, applies: list[int], local_gateway: Any, staff: Client
) -> None:
    node = gw_site.nodes.get(name="pve1")
    address = str(gw_site.gateway_ip).rsplit(".", 1)[0] + ".9"
    response = post_change(staff, f"/admin/networking/node/{node.pk}/change/", ip=address)
    assert response.redirect_chain, response.content[:500]
    assert applies == [gw_site.pk]
    assert AuditEntry.objects.filter(action="node.update", object_id=str(node.pk)).exists()

    revision = apply_site(Site.objects.get(pk=gw_site.pk), coalesce=False).revision
    assert revision is not None and revision.status == "applied", revision.error
    assert f"{address} pve1." in live_file(local_gateway, "hosts")
    assert resolve(local_gateway, f"pve1.{gw_site.internal_domain}") == [address]


def test_an_invalid_value_is_refused_by_the_service_and_changes_nothing(
    gw_site: Site, applies: list[int]
) -> None:
    staff_user = UserFactory(username="root", is_staff=True)
    with pytest.raises(ValidationFailed) as raised:
        site_services.site_update(
            site=gw_site, actor=staff_user, values={"dns_forwarders": "not an address"}
        )
    assert raised.value.extra["field"] == "dns_forwarders"
    with pytest.raises(ValidationFailed):
        site_services.node_update(
            node=gw_site.nodes.get(name="pve1"), actor=staff_user, values={"vmid": 5}
        )
    assert Site.objects.get(pk=gw_site.pk).dns_forwarders == gw_site.dns_forwarders
    assert applies == [] and not AuditEntry.objects.filter(action="site.update").exists()
    assert Node.objects.filter(site=gw_site).count() == 2
