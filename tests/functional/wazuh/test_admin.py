"""A site's Wazuh manager in the admin, through wazuh_manager_save against the double:
saved, validated, audited; its secrets encrypted, never in a page and kept when left blank;
"test the connection" reports what the double holds, or why not, without the password."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from auth.models import AuditEntry
from containers.wazuh import services
from containers.wazuh.models import EnrolmentMode, WazuhManager
from containers.wazuh.selectors import agent_groups_for, manager_for_site
from networking.models import Site
from portal.errors import PermissionDenied, ValidationFailed
from tests.factories import SiteFactory, TemplateFactory, UserFactory
from tests.fixtures.wazuh_double import (
    INDEXER_PASSWORD,
    MANAGER_PASSWORD,
    REGISTRATION_PASSWORD,
    WazuhDouble,
)

pytestmark = pytest.mark.django_db

MANAGERS = "/admin/containers/wazuhmanager/"
SECRETS = (MANAGER_PASSWORD, INDEXER_PASSWORD, REGISTRATION_PASSWORD)


@pytest.fixture
def root() -> Any:
    return UserFactory(username="root", is_staff=True, is_superuser=True)


@pytest.fixture
def staff(root: Any) -> Client:
    client = Client()
    client.force_login(root)
    return client


def page_of(response: Any) -> str:
    assert response.status_code == 200
    page = response.content.decode()
    for secret in SECRETS:
        assert secret not in page
    return page


def messages(page: str) -> str:
    found = re.search(r'<ul class="messagelist">(.*?)</ul>', page, re.S)
    return "\n".join(
        f"{level}: {html.unescape(text).strip()}".lower()
        for level, text in re.findall(
            r'<li class="(\w+)">(.*?)</li>', found[1] if found else "", re.S
        )
    )


def form_data(wazuh: WazuhDouble, site: Site, **changes: Any) -> dict[str, Any]:
    values = wazuh.manager_values(site)
    data = {k: ("on" if v is True else "" if v is False else v) for k, v in values.items()}
    data.update(
        site=site.pk,
        registration_address="",
        registration_port="",
        agent_port=1514,
        enrolment_mode=EnrolmentMode.V4_PASSWORD,
        disconnect_alert_minutes=30,
    )
    data.update(changes)
    return data


def test_added_and_changed_in_the_admin_with_secrets_write_only(
    wazuh: WazuhDouble, staff: Client
) -> None:
    site = SiteFactory()
    assert manager_for_site(site) is None
    page = page_of(staff.post(f"{MANAGERS}add/", form_data(wazuh, site), follow=True))
    assert "was added successfully" in page, messages(page)
    manager = WazuhManager.objects.get(site=site)
    assert manager_for_site(site) == manager
    assert manager.api_password == MANAGER_PASSWORD
    assert manager.registration_host == "127.0.0.1" and manager.enrolment_port == 1515
    with connection.cursor() as cursor:  # encrypted at rest
        cursor.execute(
            "SELECT api_password, enrolment_secret, indexer_password FROM containers_wazuhmanager"
        )
        stored = " ".join(cursor.fetchone())
    assert all(secret not in stored for secret in SECRETS)
    entry = AuditEntry.objects.get(action="wazuh_manager.create")
    assert entry.changes["api_password"] == "(set)"
    assert all(secret not in str(entry.changes) for secret in SECRETS)

    change = f"{MANAGERS}{manager.pk}/change/"
    page = page_of(staff.get(change))
    assert 'name="api_password"' in page and "Leave blank to keep" in page
    data = form_data(
        wazuh,
        site,
        api_password="",
        enrolment_secret="",
        indexer_password="",
        default_group="web,linux",
    )
    page_of(staff.post(change, data, follow=True))
    manager.refresh_from_db()
    assert manager.default_group == "web,linux"
    assert manager.api_password == MANAGER_PASSWORD  # kept
    assert manager.indexer_password == INDEXER_PASSWORD
    assert AuditEntry.objects.get(action="wazuh_manager.update").changes == {
        "default_group": "web,linux"
    }
    for path in (
        MANAGERS,
        change,
        "/admin/containers/wazuhagent/",
        f"/admin/networking/site/{site.pk}/change/",
    ):
        page_of(staff.get(path))


def test_a_refused_save_shows_why_and_changes_nothing(wazuh: WazuhDouble, staff: Client) -> None:
    site = SiteFactory()
    # The form's own check (the field's validator) ...
    bad = form_data(wazuh, site, default_group="no spaces")
    page = page_of(staff.post(f"{MANAGERS}add/", bad, follow=True))
    assert "is not a Wazuh group name" in html.unescape(page)
    # ... and the service's, shown as the admin's error.
    bad = form_data(wazuh, site, enrolment_mode=EnrolmentMode.V5_TOKEN, enrolment_secret="")
    text = messages(page_of(staff.post(f"{MANAGERS}add/", bad, follow=True)))
    assert text == "error: wazuh 5.x enrolment needs the enrolment token", text
    assert not WazuhManager.objects.exists()
    assert not AuditEntry.objects.filter(action__startswith="wazuh_manager.").exists()


def test_the_service_refuses_non_staff_and_plain_http(wazuh: WazuhDouble, root: Any) -> None:
    site = SiteFactory()
    with pytest.raises(PermissionDenied):
        services.wazuh_manager_save(
            actor=UserFactory(username="bob"), values=wazuh.manager_values(site)
        )
    with pytest.raises(ValidationFailed) as caught:
        services.wazuh_manager_save(
            actor=root, values=wazuh.manager_values(site, api_url="http://127.0.0.1:55000")
        )
    assert "HTTPS" in caught.value.message
    manager = services.wazuh_manager_save(
        actor=root, values=wazuh.manager_values(site, enabled=False)
    )
    assert manager_for_site(site) is None  # off: the feature says nothing for the site
    services.wazuh_manager_save(actor=root, manager=manager, values={"enabled": True})
    assert manager_for_site(site.pk) == manager


def test_test_connection_reports_the_agents_or_why_not_without_the_password(
    wazuh: WazuhDouble, staff: Client
) -> None:
    site = SiteFactory()
    manager = wazuh.configure(site)
    wazuh.add_agent("local-101-1")
    wazuh.add_agent("local-102-2", status="never_connected")
    wazuh.seed_alert("local-101-1", 5, "sshd")

    def act() -> str:
        response = staff.post(
            MANAGERS, {"action": "test_connection", "_selected_action": [manager.pk]}, follow=True
        )
        return messages(page_of(response))

    text = act()
    assert text.startswith("success: wazuh manager of local: connected: 3 agents"), text
    assert "1 never connected" in text and "the indexer answered (1 alerts)" in text
    assert AuditEntry.objects.filter(action="wazuh_manager.test").count() == 1

    wrong = "Wrong-api-password-1"
    manager.api_password = wrong
    manager.save(update_fields=["api_password"])
    text = act()
    assert text.startswith("error:") and "refused the api user 'wazuh-wui'" in text, text
    assert wrong.lower() not in text
    wazuh.set_down()
    text = act()
    assert "cannot reach the wazuh manager" in text, text
    assert AuditEntry.objects.filter(action="wazuh_manager.test").count() == 1


def test_a_template_s_group_overrides_the_site_s(wazuh: WazuhDouble) -> None:
    site = SiteFactory()
    manager = wazuh.configure(site, default_group="default,linux")
    template = TemplateFactory(site=site)
    assert agent_groups_for(manager, template) == ["default", "linux"]
    template.wazuh_group = "web"
    assert agent_groups_for(manager, template) == ["web"]
    assert agent_groups_for(manager, None) == ["default", "linux"]
