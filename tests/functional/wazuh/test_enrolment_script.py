"""The enrolment scripts (containers/wazuh/enrolment.py), run by bash in a CT's directory as
guest emulation lays it out (the stand-ins on PATH, the wazuh-agent package installed),
without SSH: the 4.x one against the Wazuh double's authd over TLS with the real agent
stand-in, the 5.x one with a stand-in `wazuh-agent-auth` that records what it was given.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from containers.wazuh import enrolment
from pvesim.guestos import boot
from pvesim.guestos.apt import preinstall
from pvesim.guestos.layout import Layout
from pvesim.guests.pack import guestos_pyz
from tests.fixtures.wazuh_double import REGISTRATION_PASSWORD, WazuhDouble

TOKEN = "wazuh-enrolment-token.eyJhZGRyZXNzIjoiMTAuMC4wLjUifQ.c2VjcmV0"
AUTH_STAND_IN = """#!/bin/sh
# wazuh-agent-auth, as far as the test needs: what it was given, and a key.
O="$PVESIM_GUEST_ROOT/var/ossec"
echo "$@" > "$O/auth.args"
IFS= read -r T
printf '%s' "$T" | sha256sum | cut -d' ' -f1 > "$O/auth.stdin.sha256"
echo "007 $(sed -n 's:.*<agent_name>\\(.*\\)</agent_name>.*:\\1:p' "$O/etc/ossec.conf") any 0123" \
    > "$O/etc/client.keys"
echo "INFO: Valid key received"
"""


@dataclass
class Ct:
    root: Path
    layout: Layout

    @property
    def ossec(self) -> Path:
        return self.root / "var/ossec"

    def run(
        self, mode: str, config: enrolment.AgentConfig, secret: str, wait: float = 10
    ) -> tuple[int, str]:
        strategy = enrolment.strategy_for(mode)
        done = subprocess.run(
            ["bash", "-c", strategy.script(config, wait_seconds=wait)],
            input=strategy.stdin(secret),
            capture_output=True,
            env=self.layout.env(),
            cwd=self.root,
            timeout=wait + 30,
            check=False,
        )
        return done.returncode, (done.stdout + done.stderr).decode()

    def systemctl(self, *args: str) -> str:
        return subprocess.run(
            ["systemctl", *args], capture_output=True, env=self.layout.env(), cwd=self.root
        ).stdout.decode()


def make_ct(root: Path, *, agent: bool = True) -> Ct:
    layout = Layout(root)
    layout.pyz.parent.mkdir(parents=True)
    layout.pyz.write_bytes(guestos_pyz())
    boot.prepare(layout, hostname="ct", keys=None, python=sys.executable)
    if agent:
        preinstall(layout, ["wazuh-agent"])
    return Ct(root, layout)


@pytest.fixture
def ct(tmp_path: Path) -> Iterator[Ct]:
    made = make_ct(tmp_path / "ct")
    yield made
    made.systemctl("stop", "wazuh-agent")


def config_for(wazuh: WazuhDouble, name: str, *groups: str) -> enrolment.AgentConfig:
    return enrolment.AgentConfig("127.0.0.1", 1514, wazuh.authd_port, name, groups or ("default",))


def test_v4_enrols_with_authd_once_and_says_why_when_refused(
    ct: Ct, tmp_path: Path, wazuh: WazuhDouble
) -> None:
    config = config_for(wazuh, "lyon-1001-42")
    code, out = ct.run("v4_password", config, "not-the-password")
    assert code == enrolment.REFUSED, out
    assert "wazuh-agentd: ERROR: Invalid password (from manager)" in out
    assert wazuh.agent_named("lyon-1001-42") is None

    code, out = ct.run("v4_password", config, REGISTRATION_PASSWORD)
    assert code == enrolment.ENROLLED, out
    agent = wazuh.agent_named("lyon-1001-42")
    assert agent is not None and agent.group == ["default"]
    assert enrolment.agent_id_in(out.splitlines()) == agent.id
    keys = (ct.ossec / "etc/client.keys").read_text()
    assert keys.startswith(f"{agent.id} lyon-1001-42 any ") and keys.split()[3] not in out
    assert "active (running)" in ct.systemctl("status", "wazuh-agent")
    assert "enabled;" in ct.systemctl("status", "wazuh-agent")
    assert (ct.ossec / "etc/authd.pass").read_text() == f"{REGISTRATION_PASSWORD}\n"
    log = (ct.ossec / "logs/ossec.log").read_text()
    assert "not-the-password" not in log and REGISTRATION_PASSWORD not in log + out

    # Again (an earlier try whose answer was lost): reconfigured, not enrolled twice.
    code, out = ct.run("v4_password", config, REGISTRATION_PASSWORD)
    assert code == enrolment.ENROLLED and enrolment.agent_id_in(out.splitlines()) == agent.id
    assert [e["name"] for e in wazuh.enrolments] == ["lyon-1001-42", "lyon-1001-42"]

    # Another container under the same name is refused (authd: the name is taken).
    other = make_ct(tmp_path / "other")
    try:
        code, out = other.run("v4_password", config, REGISTRATION_PASSWORD)
    finally:
        other.systemctl("stop", "wazuh-agent")
    assert code == enrolment.REFUSED and "Duplicate agent name: lyon-1001-42" in out


def test_v4_without_a_manager_or_without_an_agent(tmp_path: Path, wazuh: WazuhDouble) -> None:
    bare = make_ct(tmp_path / "bare", agent=False)
    code, out = bare.run("v4_password", config_for(wazuh, "lyon-1-1"), REGISTRATION_PASSWORD)
    assert code == enrolment.NOT_INSTALLED and "/var/ossec/etc is missing" in out
    assert not (tmp_path / "bare/var/ossec").exists()

    ct = make_ct(tmp_path / "ct")
    wazuh.set_down()
    try:
        code, out = ct.run("v4_password", config_for(wazuh, "lyon-1-2"), REGISTRATION_PASSWORD)
    finally:
        ct.systemctl("stop", "wazuh-agent")
        wazuh.set_down(False)
    assert code == enrolment.UNREACHABLE
    assert (
        f"(1208): Unable to connect to enrollment service at '[127.0.0.1]:{wazuh.authd_port}'"
        in out
    )


def test_v5_writes_the_config_and_gives_the_token_to_wazuh_agent_auth_on_stdin(ct: Ct) -> None:
    config = enrolment.AgentConfig("10.0.0.5", 1514, 1517, "lyon-1001-42", ("web", "linux"))
    code, out = ct.run("v5_token", config, TOKEN)
    assert code == enrolment.REFUSED and "not a Wazuh 5 agent" in out  # no tool: not 5.x

    tool = ct.ossec / "bin/wazuh-agent-auth"
    tool.write_text(AUTH_STAND_IN)
    tool.chmod(0o750)
    # A configuration without a <client> section gets one of its own.
    (ct.ossec / "etc/ossec.conf").write_text("<ossec_config>\n  <logging/>\n</ossec_config>\n")
    code, out = ct.run("v5_token", config, TOKEN)
    assert code == enrolment.ENROLLED, out
    assert enrolment.agent_id_in(out.splitlines()) == "007"
    conf = (ct.ossec / "etc/ossec.conf").read_text()
    assert conf.startswith("<ossec_config>\n  <logging/>\n</ossec_config>\n<ossec_config>")
    assert "<address>10.0.0.5</address>\n      <port>1514</port>" in conf
    assert "<manager_address>10.0.0.5</manager_address>\n      <port>1517</port>" in conf
    assert "<agent_name>lyon-1001-42</agent_name>" in conf
    assert "<groups>web,linux</groups>" in conf and "authorization_pass_path" not in conf
    assert (ct.ossec / "auth.args").read_text().strip() == "--token-file -"
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    assert (ct.ossec / "auth.stdin.sha256").read_text().strip() == digest
    # The token was never written to a file, nor printed.
    assert not (ct.ossec / "etc/authd.pass").exists()
    assert TOKEN not in out
    holding = [p for p in ct.root.rglob("*") if p.is_file() and TOKEN.encode() in p.read_bytes()]
    assert holding == []
    assert "active (running)" in ct.systemctl("status", "wazuh-agent")
