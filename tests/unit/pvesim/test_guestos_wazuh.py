"""The wazuh-agent stand-in without a CT or a manager: what the package lays down, how the
agent reads ossec.conf and its password, the request line it sends (authd's protocol),
and what it makes of authd's answers. The enrolment over TLS against the Wazuh double's
authd is in tests/functional/wazuh/test_enrolment_script.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pvesim.admin import AdminApi, AdminError
from pvesim.config import SimConfig
from pvesim.guestos import apt, wazuh
from pvesim.guestos.layout import Layout
from pvesim.guestos.service import ServiceManager
from pvesim.state import SimState

CONF = """\
<?xml version="1.0"?>
<ossec_config>
  <client>
    <server>
      <address>10.0.0.5</address>
      <port>1514</port>
    </server>
    <enrollment>
      <enabled>yes</enabled>
      <manager_address>10.0.0.6</manager_address>
      <port>1616</port>
      <agent_name>lyon-1001-42</agent_name>
      <groups>web,linux</groups>
      <authorization_pass_path>etc/authd.pass</authorization_pass_path>
    </enrollment>
  </client>
</ossec_config>
<ossec_config>
  <client><server><address>ignored</address></server></client>
</ossec_config>
"""


def installed(tmp_path: Path) -> Layout:
    layout = Layout(tmp_path)
    apt.preinstall(layout, ["wazuh-agent"])
    return layout


def test_the_package_lays_down_the_agent_neither_enabled_nor_started(tmp_path: Path) -> None:
    layout = installed(tmp_path)
    home = tmp_path / "var/ossec"
    assert "<address>MANAGER_IP</address>" in (home / "etc/ossec.conf").read_text()
    assert (home / "etc/client.keys").read_text() == ""
    assert (home / "etc/ossec.conf").stat().st_mode & 0o777 == 0o640
    shim = (home / "bin/wazuh-agentd").read_text()
    assert f"exec {sys.executable} {layout.pyz} wazuh-agentd" in shim
    manager = ServiceManager(layout)
    found = manager.find("wazuh-agent.service")
    assert found is not None and not found.unit.record_only  # a real process, not a record
    assert not manager.enabled(found) and manager.state("wazuh-agent.service") == "inactive"
    assert apt.read_status(layout)["wazuh-agent"]["Version"] == wazuh.VERSION
    # A reinstall keeps the configuration (dpkg's conffiles).
    (home / "etc/ossec.conf").write_text(CONF)
    wazuh.install(layout, sys.executable)
    assert (home / "etc/ossec.conf").read_text() == CONF


def test_the_first_client_section_is_read() -> None:
    conf = wazuh.read_conf(CONF)
    assert (conf.address, conf.port) == ("10.0.0.5", 1514)
    assert (conf.enrol_host, conf.enrol_port) == ("10.0.0.6", 1616)
    assert conf.agent_name == "lyon-1001-42" and conf.groups == ["web", "linux"]
    assert conf.pass_path == "etc/authd.pass"
    bare = wazuh.read_conf(wazuh.DEFAULT_CONF)
    assert bare.address == "MANAGER_IP" and bare.enrol_host == "MANAGER_IP"
    assert bare.enrol_port == 1515 and bare.agent_name == ""


def test_the_request_line_and_the_password_file(tmp_path: Path) -> None:
    layout = installed(tmp_path)
    agent = wazuh.Agent(layout)
    conf = wazuh.read_conf(CONF)
    assert agent.request(conf) == (
        f"OSSEC A:'lyon-1001-42' V:'{wazuh.AGENT_VERSION}' G:'web,linux'\n"
    )  # no password file: no PASS part
    (tmp_path / "var/ossec/etc/authd.pass").write_text("s3cret-pass\n")
    assert agent.request(conf) == (
        f"OSSEC PASS: s3cret-pass OSSEC A:'lyon-1001-42' V:'{wazuh.AGENT_VERSION}' G:'web,linux'\n"
    )
    (tmp_path / "etc").mkdir(exist_ok=True)
    (tmp_path / "etc/hostname").write_text("ct105\n")
    conf.agent_name, conf.groups = "", []
    assert agent.request(conf).endswith(f"OSSEC A:'ct105' V:'{wazuh.AGENT_VERSION}'\n")
    log = (tmp_path / "var/ossec/logs/ossec.log").read_text()
    assert "Using password specified on file: etc/authd.pass" in log
    assert "s3cret-pass" not in log


def test_authd_answers_become_a_key_or_a_logged_error(tmp_path: Path) -> None:
    layout = installed(tmp_path)
    agent = wazuh.Agent(layout)
    keys = tmp_path / "var/ossec/etc/client.keys"
    assert not agent.store("ERROR: Invalid password")
    assert not agent.store("garbage")
    assert not agent.enrolled()
    assert agent.store("OSSEC K:'007 lyon-1001-42 any 0123abcd'")
    assert keys.read_text() == "007 lyon-1001-42 any 0123abcd\n"
    assert keys.stat().st_mode & 0o777 == 0o640 and agent.enrolled()
    log = (tmp_path / "var/ossec/logs/ossec.log").read_text()
    assert "wazuh-agentd: ERROR: Invalid password (from manager)" in log
    assert "wazuh-agentd: ERROR: Invalid keys format received." in log
    assert "wazuh-agentd: INFO: Valid key received" in log
    assert "0123abcd" not in log


def test_an_unconfigured_agent_refuses_to_start(tmp_path: Path) -> None:
    agent = wazuh.Agent(installed(tmp_path))
    assert agent.run() == 1
    log = (tmp_path / "var/ossec/logs/ossec.log").read_text()
    assert "(4112): Invalid server address found: 'MANAGER_IP'" in log


def test_a_templates_packages_are_set_checked_and_forgotten(tmp_path: Path) -> None:
    state = SimState(SimConfig(state_dir=tmp_path))
    admin = AdminApi(state)
    volid = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"
    admin.template_packages({"template": volid, "packages": ["wazuh-agent"]})
    assert state.template_packages == {"debian-12-standard_12.7-1_amd64.tar.zst": ("wazuh-agent",)}
    with pytest.raises(AdminError):
        admin.template_packages({"template": volid, "packages": ["x; rm -rf /"]})
    admin.template_packages({"template": volid, "packages": []})
    assert state.template_packages == {}
