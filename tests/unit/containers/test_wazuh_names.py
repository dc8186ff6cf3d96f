"""Agent names and group names on the Wazuh side (containers/wazuh/names.py), and the
JWT expiry the client reads: pure functions, no server."""

from __future__ import annotations

import base64
import json

import pytest
from django.core.exceptions import ValidationError

from containers.models import Container
from containers.wazuh.client import TOKEN_LIFETIME, _jwt_expiry, _parse_time
from containers.wazuh.models import EnrolmentMode, WazuhManager
from containers.wazuh.names import (
    AGENT_NAME_RE,
    agent_name,
    agent_name_for,
    split_groups,
    validate_wazuh_groups,
)
from networking.models import Site


def container(pk: int | None, vmid: int, hostname: str = "web", slug: str = "lyon") -> Container:
    return Container(pk=pk, site=Site(slug=slug), vmid=vmid, hostname=hostname)


def test_an_agent_is_named_by_site_vmid_and_container_id() -> None:
    assert agent_name_for(container(42, 1001)) == "lyon-1001-42"


def test_a_reused_hostname_or_vmid_never_reuses_an_agent_name() -> None:
    old = container(42, 1001, "web")
    same_vmid_and_hostname = container(57, 1001, "web")  # the VMID and hostname came free
    other_site = container(42, 1001, "web", slug="paris")
    names = {agent_name_for(c) for c in (old, same_vmid_and_hostname, other_site)}
    assert len(names) == 3


def test_the_longest_names_are_still_wazuh_agent_names() -> None:
    name = agent_name(site_slug="a" * 32, vmid=999_999_999, container_id=2**63 - 1)
    assert AGENT_NAME_RE.fullmatch(name) and len(name) <= 128


def test_an_unsaved_container_has_no_agent_name() -> None:
    with pytest.raises(ValueError, match="once it is saved"):
        agent_name_for(container(None, 1001))


@pytest.mark.parametrize("value", ["default", "web,linux", " web , linux ", "a.b_c-d", ""])
def test_group_names_wazuh_accepts(value: str) -> None:
    validate_wazuh_groups(value)


@pytest.mark.parametrize("value", ["no spaces", "web,lin/ux", "..", "x" * 129, "caf\u00e9"])
def test_group_names_wazuh_refuses(value: str) -> None:
    with pytest.raises(ValidationError):
        validate_wazuh_groups(value)


def test_groups_are_split_on_commas() -> None:
    assert split_groups(" web, linux,,") == ["web", "linux"]


def test_the_registration_host_and_port_follow_the_api_url_and_the_mode() -> None:
    manager = WazuhManager(api_url="https://wazuh.example.org:55000")
    assert (manager.registration_host, manager.enrolment_port) == ("wazuh.example.org", 1515)
    manager.enrolment_mode = EnrolmentMode.V5_TOKEN
    assert manager.enrolment_port == 1517
    manager.registration_address, manager.registration_port = "10.0.0.5", 11515
    assert (manager.registration_host, manager.enrolment_port) == ("10.0.0.5", 11515)
    manager.ca_bundle = "/etc/ssl/wazuh-ca.pem"
    assert manager.tls_verify == "/etc/ssl/wazuh-ca.pem"
    manager.verify_tls = False
    assert manager.tls_verify is False


def test_a_token_s_expiry_is_read_from_its_payload_or_assumed() -> None:
    payload = base64.urlsafe_b64encode(json.dumps({"exp": 1234}).encode()).rstrip(b"=").decode()
    assert _jwt_expiry(f"h.{payload}.s", now=0) == 1234
    assert _jwt_expiry("not-a-jwt", now=100) == 100 + TOKEN_LIFETIME
    assert _jwt_expiry("h.%%%.s", now=100) == 100 + TOKEN_LIFETIME


def test_wazuh_s_timestamps_are_read_with_their_offset() -> None:
    when = _parse_time("2026-01-02T03:04:05.678+0000")
    assert when is not None and when.utcoffset() is not None and when.microsecond == 678000
    assert _parse_time("garbage") is None
