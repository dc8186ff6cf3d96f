"""The enrolment strategies (one per EnrolmentMode), the job plans with and without a
Wazuh manager, and the agent records' writes. The scripts themselves run in
tests/functional/wazuh/test_enrolment_script.py, the jobs in test_enrolment_e2e.py."""

from __future__ import annotations

from typing import Any

import pytest

from containers.jobs import kind_of
from containers.models import Container, JobKind, WazuhAgent, WazuhManager
from containers.wazuh import enrolment
from containers.wazuh.agents import (
    wazuh_agent_enrolled,
    wazuh_agent_enrolling,
    wazuh_agent_removal_pending,
    wazuh_agent_removed,
)
from containers.wazuh.models import AgentStatus, EnrolmentMode
from networking.models import Site
from tests.factories import NodeFactory, SiteFactory, TemplateFactory, make_containers

pytestmark = pytest.mark.django_db

CONFIG = enrolment.AgentConfig(
    manager_host="wazuh.example.org",
    agent_port=1514,
    enrolment_port=1515,
    name="lyon-1001-42",
    groups=("web", "linux"),
)


def test_one_strategy_per_mode() -> None:
    assert isinstance(enrolment.strategy_for("v4_password"), enrolment.PasswordStrategy)
    assert isinstance(enrolment.strategy_for(EnrolmentMode.V5_TOKEN), enrolment.TokenStrategy)
    assert set(enrolment.STRATEGIES) == set(EnrolmentMode.values)
    with pytest.raises(ValueError):
        enrolment.strategy_for("v3")


def test_the_v4_strategy_writes_the_password_file_named_in_the_config() -> None:
    strategy = enrolment.strategy_for(EnrolmentMode.V4_PASSWORD)
    block = strategy.client_block(CONFIG)
    assert "<address>wazuh.example.org</address>\n      <port>1514</port>" in block
    assert "<manager_address>wazuh.example.org</manager_address>" in block
    assert "<port>1515</port>" in block and "<agent_name>lyon-1001-42</agent_name>" in block
    assert "<groups>web,linux</groups>" in block
    assert "<authorization_pass_path>etc/authd.pass</authorization_pass_path>" in block
    script = strategy.script(CONFIG, wait_seconds=30)
    assert 'printf "%s\\n" "$S" > "$P.new"' in script and "chmod 640" in script
    assert "wazuh-agent-auth" not in script
    assert strategy.stdin("pa ss") == b"pa ss\n"


def test_the_v5_strategy_hands_the_token_to_wazuh_agent_auth_on_its_stdin() -> None:
    strategy = enrolment.strategy_for(EnrolmentMode.V5_TOKEN)
    block = strategy.client_block(
        enrolment.AgentConfig("10.0.0.5", 1514, 1517, "lyon-1001-42", ("default",))
    )
    assert "<port>1517</port>" in block and "authorization_pass_path" not in block
    script = strategy.script(CONFIG, wait_seconds=30)
    assert '| "$O/bin/wazuh-agent-auth" --token-file -' in script
    assert "authd.pass" not in script
    assert "systemctl stop wazuh-agent" in script  # the tool refuses a running agent


def test_the_secret_is_one_line_on_stdin_and_never_in_the_script() -> None:
    for strategy in enrolment.STRATEGIES.values():
        with pytest.raises(ValueError):
            strategy.stdin("two\nlines")
        script = strategy.script(CONFIG, wait_seconds=5)
        assert "IFS= read -r S" in script and "unset S" in script
        assert script.count("$S") == script.count('"$S"')  # only ever quoted
        assert "echo $S" not in script and 'echo "$S"' not in script


def test_values_are_escaped_for_the_xml_and_quoted_for_the_shell() -> None:
    config = enrolment.AgentConfig("a<b>&'c", 1514, 1515, "lyon-1-2", ("default",))
    block = enrolment.PasswordStrategy().client_block(config)
    assert "<address>a&lt;b&gt;&amp;'c</address>" in block
    script = enrolment.PasswordStrategy().script(config, wait_seconds=5)
    assert "a&lt;b&gt;&amp;'\"'\"'c" in script  # inside shlex's single quotes


def test_the_agent_id_line_and_the_key_removal() -> None:
    assert enrolment.agent_id_in(["x", "agent-id: 007", "y"]) == "007"
    assert enrolment.agent_id_in(["nothing"]) == ""
    command = enrolment.forget_key_command("ssh-ed25519 AAAAC3Nz cluster-portal-deploy")
    assert "grep -vF -- AAAAC3Nz" in command and "cluster-portal-deploy" not in command


def a_container() -> Container:
    site = SiteFactory()
    NodeFactory(site=site, slot=0)
    NodeFactory(site=site, slot=1)
    TemplateFactory(site=site)
    return make_containers(site, 1)[0]


def _manager(site: Site, **values: Any) -> WazuhManager:
    return WazuhManager.objects.create(
        site=site, api_url="https://wazuh.example.org:55000", api_user="wui", **values
    )


def test_the_steps_are_planned_only_with_an_enabled_manager() -> None:
    c = a_container()
    create, delete = kind_of(JobKind.CREATE), kind_of(JobKind.DELETE)
    base_create = [s["name"] for s in create.plan({}, c)]
    base_delete = [s["name"] for s in delete.plan({}, c)]
    assert not any("wazuh" in n for n in base_create + base_delete)
    assert [s["name"] for s in create.plan({}, None)] == base_create
    manager = _manager(c.site)
    assert [s["name"] for s in create.plan({}, c)] == [*base_create, "wazuh_enrol"]
    assert [s["name"] for s in delete.plan({}, c)] == base_delete  # no agent enrolled
    wazuh_agent_enrolling(container=c, groups=["default"])
    names = [s["name"] for s in delete.plan({}, c)]
    assert names[names.index("release") + 1] == "wazuh_remove" and names[-1] == "gateway"
    deploy = [s["name"] for s in kind_of(JobKind.DEPLOY).plan({"create": True}, c)]
    assert deploy[deploy.index("gateway") + 1] == "wazuh_enrol" and deploy[-1] == "publish"
    manager.enabled = False
    manager.save()
    assert [s["name"] for s in create.plan({}, c)] == base_create
    assert [s["name"] for s in delete.plan({}, c)] == base_delete


def test_agent_records_move_only_forward() -> None:
    c = a_container()
    agent = wazuh_agent_enrolling(container=c, groups=["web"])
    assert agent.status == AgentStatus.PENDING and agent.groups == ["web"]
    again = wazuh_agent_enrolling(container=c, groups=["web", "linux"])  # a retried step
    assert again.pk == agent.pk and again.groups == ["web", "linux"]
    wazuh_agent_enrolled(agent=agent, agent_id="003")
    wazuh_agent_removal_pending(agent=agent, reason="the manager did not answer")
    agent.refresh_from_db()
    assert (agent.status, agent.agent_id) == (AgentStatus.REMOVAL_PENDING, "003")
    assert wazuh_agent_removed(agent=agent, detail="deleted")
    assert not wazuh_agent_removed(agent=agent, detail="twice")  # already removed
    wazuh_agent_removal_pending(agent=agent, reason="late")  # no way back from removed
    agent.refresh_from_db()
    assert agent.status == AgentStatus.REMOVED and agent.last_error == ""
    assert WazuhAgent.objects.count() == 1
