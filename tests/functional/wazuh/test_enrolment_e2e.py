"""Enrolment at creation and removal at deletion, end to end: the real create and delete
jobs in the session's Celery worker, the simulator with guest emulation (a container's
sshd, systemctl and the wazuh-agent stand-in are real processes), the gateway, and the
Wazuh double (its API and its authd over TLS) in this process.

The site's template holds the `wazuh-agent` package (`set_template_packages`), as an image
built with the agent would; the stand-in enrols with the double's authd with authd's line
protocol, so an agent that shows on the double got there through the container.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from auth.models import AuditEntry
from containers import services
from containers.deploy_key import deploy_public_key
from containers.models import Container, Job, JobLogEntry, WazuhAgent
from containers.wazuh.client import WazuhClient
from containers.wazuh.models import AgentStatus
from containers.wazuh.names import agent_name_for
from containers.wazuh.sweep import wazuh_sweep_site
from tests.conftest import wait_job
from tests.factories import UserFactory
from tests.fixtures.wazuh_double import REGISTRATION_PASSWORD, WazuhDouble

pytestmark = [pytest.mark.e2e, pytest.mark.gateway, pytest.mark.django_db(transaction=True)]

CREATE_STEPS = [
    "create",
    "start",
    "inspect",
    "access_group",
    "realm_sync",
    "proxmox_acl",
    "gateway",
]


@dataclass
class Monitored:
    stack: Any
    wazuh: WazuhDouble
    manager: Any

    def create(self, hostname: str, **kwargs: Any) -> tuple[Job, Container]:
        owner = kwargs.pop("owner", None) or UserFactory()
        template = kwargs.pop("template", None) or self.stack.template
        job = services.container_create(owner=owner, hostname=hostname, template=template, **kwargs)
        done = wait_job(job.pk, timeout=120)
        return done, Container.objects.get(pk=done.container_id)

    def delete(self, container: Container) -> Job:
        container.refresh_from_db()
        return wait_job(services.container_delete(container=container, actor=None).pk, timeout=120)

    def ct(self, container: Container) -> Path:
        """The container's root directory on the host (guest emulation)."""
        return self.stack.guest_dir / str(container.vmid)


@pytest.fixture
def monitored(launchpad_stack: Any, wazuh: WazuhDouble) -> Iterator[Monitored]:
    """Site `local` with a Wazuh manager on the double, and a template that holds the agent."""
    stack = launchpad_stack
    volid = stack.template.volid
    stack.sim.admin.set_template_packages(volid, ["wazuh-agent"])
    try:
        yield Monitored(stack, wazuh, wazuh.configure(stack.site))
    finally:
        wazuh.set_down(False)
        stack.sim.admin.set_template_packages(volid, [])


def log_of(job: Job) -> str:
    return "\n".join(f"[{e.level}] {e.message}" for e in job.log_entries.order_by("id"))


def step_states(job: Job) -> dict[str, str]:
    return {s["name"]: s["state"] for s in job.steps}


def unit_alive(ct: Path, unit: str) -> bool:
    pid_file = ct / "run" / "systemd" / "units" / f"{unit}.pid"
    try:
        os.kill(int(pid_file.read_text()), 0)
    except (OSError, ValueError):
        return False
    return True


def files_holding(secret: str, *roots: Path) -> list[str]:
    """Every regular file under `roots` whose bytes hold `secret`."""
    found = []
    needle = secret.encode()
    for root in roots:
        for path in [root] if root.is_file() else root.rglob("*"):
            try:
                if path.is_file() and not path.is_symlink() and needle in path.read_bytes():
                    found.append(str(path))
            except OSError:
                continue
    return found


def test_create_enrols_the_agent_and_delete_removes_it(monitored: Monitored, run_dir: Path) -> None:
    m, wazuh = monitored, monitored.wazuh
    job, c = m.create("watched")
    assert job.status == "succeeded", (job.error, log_of(job))
    name = agent_name_for(c)
    # The enrolment is the create's last step, after the gateway published the address.
    assert [s["name"] for s in job.steps] == [*CREATE_STEPS, "wazuh_enrol"]
    assert step_states(job)["wazuh_enrol"] == "done"
    log = log_of(job)
    assert f"agent {name}, group(s) default, manager 127.0.0.1:{wazuh.authd_port}" in log
    assert "removed the portal's key from the container's authorized keys" in log

    # The double's authd registered it, with its name and group, from the container.
    agent = wazuh.agent_named(name)
    assert agent is not None and agent.group == ["default"]
    assert agent.status == "never_connected"
    assert wazuh.enrolments == [
        {"name": name, "groups": ["default"], "answer": f"OSSEC K:'{agent.id} {name}"}
    ]
    record = WazuhAgent.objects.get(container=c)
    assert (record.name, record.agent_id, record.groups) == (name, agent.id, ["default"])
    assert record.status == AgentStatus.PENDING and record.last_error == ""
    assert f"enrolled: agent {agent.id} {name}" in log

    # In the container: the agent's configuration, the password file (0640), its key,
    # the agent running, and the portal's key gone again.
    ct = m.ct(c)
    conf = (ct / "var/ossec/etc/ossec.conf").read_text()
    assert f"<agent_name>{name}</agent_name>" in conf
    assert f"<manager_address>127.0.0.1</manager_address>\n      <port>{wazuh.authd_port}" in conf
    assert "<groups>default</groups>" in conf and "<address>127.0.0.1</address>" in conf
    assert "<config-profile>debian, debian12</config-profile>" in conf  # the template's kept
    password = ct / "var/ossec/etc/authd.pass"
    assert password.read_text() == f"{REGISTRATION_PASSWORD}\n"
    assert password.stat().st_mode & 0o777 == 0o640
    assert (ct / "var/ossec/etc/client.keys").read_text().startswith(f"{agent.id} {name} any ")
    assert unit_alive(ct, "wazuh-agent.service")
    assert deploy_public_key().split()[1] not in (ct / ".ssh/authorized_keys").read_text()

    # Its first keep-alive (a test control: the stand-in sends none) makes it active.
    wazuh.keepalive(name)
    listed = WazuhClient.for_manager(m.manager).agent_by_name(name)
    assert listed is not None and listed["status"] == "active"

    # The secret is in no log: the job's, the audit's, the worker's, the web server's,
    # the simulator's (its log, the CT's sshd and init logs), the container's journal
    # and the agent's own log.
    assert REGISTRATION_PASSWORD not in log
    audit = " ".join(
        f"{e.summary} {e.changes}" for e in AuditEntry.objects.filter(object_type__contains="wazuh")
    )
    assert f"recorded the Wazuh agent {name}" in audit and REGISTRATION_PASSWORD not in audit
    assert not JobLogEntry.objects.filter(message__contains=REGISTRATION_PASSWORD).exists()
    logs = [*m.stack.logs.values(), run_dir, ct / "var/log", ct / "var/ossec/logs"]
    assert files_holding(REGISTRATION_PASSWORD, *logs) == []

    # Delete: after the release, its agent is deleted from the manager by id.
    job = m.delete(c)
    assert job.status == "succeeded", (job.error, log_of(job))
    names = [s["name"] for s in job.steps]
    assert names[names.index("release") + 1] == "wazuh_remove"
    assert step_states(job)["wazuh_remove"] == "done"
    assert f"deleted agent {agent.id} ({name}) from the manager" in log_of(job)
    assert wazuh.agent_named(name) is None
    deletes = [call.query for call in wazuh.calls if call.method == "DELETE"]
    assert [(q["agents_list"], q["status"], q["older_than"]) for q in deletes] == [
        (agent.id, "all", "0s")
    ]
    record.refresh_from_db()
    assert record.status == AgentStatus.REMOVED and record.removed_at is not None
    assert wazuh.agent_named("wazuh-manager") is not None  # 000 is never touched


def test_template_group_override_a_refused_group_and_a_template_without_the_agent(
    monitored: Monitored,
) -> None:
    m, wazuh = monitored, monitored.wazuh
    template = m.stack.template
    template.wazuh_group = "web,linux"
    template.save(update_fields=["wazuh_group"])
    wazuh.add_group("web")
    wazuh.add_group("linux")
    job, c = m.create("webby")
    assert job.status == "succeeded", (job.error, log_of(job))
    agent = wazuh.agent_named(agent_name_for(c))
    assert agent is not None and agent.group == ["web", "linux"]
    assert WazuhAgent.objects.get(container=c).groups == ["web", "linux"]

    # A group the manager lacks: authd refuses; the create completes, the agent is not
    # enrolled and says why, and nothing is retried (a refusal is final).
    template.wazuh_group = "nosuchgroup"
    template.save(update_fields=["wazuh_group"])
    job, refused = m.create("refused")
    assert job.status == "succeeded" and job.attempts == 1, (job.error, log_of(job))
    record = WazuhAgent.objects.get(container=refused)
    assert record.agent_id == "" and "Invalid group: nosuchgroup (from manager)" in (
        record.last_error
    )
    assert record.last_error.startswith("the manager refused the enrolment")
    assert "is not enrolled: the manager refused" in log_of(job)
    assert wazuh.agent_named(agent_name_for(refused)) is None
    assert REGISTRATION_PASSWORD not in log_of(job)

    # A template without the agent: a warning, the create completes, never enrolled.
    m.stack.sim.admin.set_template_packages(template.volid, [])
    template.wazuh_group = ""
    template.save(update_fields=["wazuh_group"])
    job, bare = m.create("bare")
    assert job.status == "succeeded" and job.attempts == 1, (job.error, log_of(job))
    warnings = [e.message for e in job.log_entries.filter(level="warning")]
    assert any("its template has no agent installed (/var/ossec is missing)" in w for w in warnings)
    record = WazuhAgent.objects.get(container=bare)
    assert record.agent_id == "" and record.last_error.startswith("never enrolled")
    assert not (m.ct(bare) / "var/ossec").exists()
    assert wazuh.enrolments[-1]["name"] == agent_name_for(refused)  # nothing more asked


def test_the_manager_down_at_enrolment_and_at_deletion(monitored: Monitored) -> None:
    m, wazuh = monitored, monitored.wazuh
    wazuh.set_down()
    job, c = m.create("lonely")
    # Retried with the job's backoff, then the create completes without the agent.
    assert job.status == "succeeded", (job.error, log_of(job))
    assert job.attempts == 4  # JOB_MAX_ATTEMPTS in tests
    log = log_of(job)
    assert log.count("enrolling the Wazuh agent: the agent could not reach the manager") == 3
    assert "(1208): Unable to connect to enrollment service" in log
    record = WazuhAgent.objects.get(container=c)
    assert record.agent_id == "" and record.status == AgentStatus.PENDING
    assert record.last_error.startswith("not enrolled after 4 attempts: the agent could not")
    assert c.status == "running"
    name = agent_name_for(c)

    # A real agent keeps trying on its own: once the manager is back, it enrols.
    wazuh.set_down(False)
    end = time.monotonic() + 15
    while wazuh.agent_named(name) is None and time.monotonic() < end:
        time.sleep(0.2)
    assert wazuh.agent_named(name) is not None, "the agent did not enrol by itself"

    # Delete with the manager down: retried, then the delete completes and the agent is
    # left for the sweep.
    wazuh.set_down()
    job = m.delete(c)
    assert job.status == "succeeded", (job.error, log_of(job))
    assert job.attempts == 4
    assert step_states(job)["wazuh_remove"] == "done"
    c.refresh_from_db()
    assert c.status == "deleted"
    record.refresh_from_db()
    assert record.status == AgentStatus.REMOVAL_PENDING
    assert record.last_error.startswith("the manager did not answer")
    assert "is left for the sweep after 4 attempts" in log_of(job)
    wazuh.set_down(False)
    leftover = wazuh.agent_named(name)
    assert leftover is not None  # still there, for the sweep
    assert wazuh.count("DELETE") == 0

    # The manager is back: the sweep finds the leftover (the container deleted in the
    # portal, its VMID gone from Proxmox), deletes it by the id the manager lists, and
    # closes the record.
    wazuh.calls.clear()
    run = wazuh_sweep_site(site=m.stack.site)
    assert run is not None and not run.errors and run.kept == [], (run.errors, run.kept)
    assert [(i["name"], i["agent_id"], i["how"]) for i in run.removed] == [
        (name, leftover.id, "deleted")
    ]
    assert wazuh.agent_named(name) is None
    deletes = [call.query for call in wazuh.calls if call.method == "DELETE"]
    assert [(q["agents_list"], q["status"], q["older_than"]) for q in deletes] == [
        (leftover.id, "all", "0s")
    ]
    record.refresh_from_db()
    assert record.status == AgentStatus.REMOVED and record.removed_at is not None
    assert (record.agent_id, record.last_error) == (leftover.id, "")
    assert wazuh.agent_named("wazuh-manager") is not None  # 000 is never touched
    # Swept once: the next day's sweep has nothing to do.
    again = wazuh_sweep_site(site=m.stack.site)
    assert again is not None and again.removed == again.kept == [] and not again.errors


def test_no_manager_no_step_and_no_word_of_wazuh(cluster: Any, worker: Any) -> None:
    owner = UserFactory()
    job = wait_job(
        services.container_create(
            owner=owner, hostname="plain", template=cluster.templates.get()
        ).pk
    )
    assert job.status == "succeeded", job.error
    assert [s["name"] for s in job.steps] == CREATE_STEPS
    c = Container.objects.get(pk=job.container_id)
    job = wait_job(services.container_delete(container=c, actor=owner).pk)
    assert job.status == "succeeded", job.error
    assert "wazuh" not in " ".join(s["name"] for s in job.steps)
    said = " ".join(e.message for e in JobLogEntry.objects.filter(job__container=c))
    assert "wazuh" not in said.lower()
    assert not WazuhAgent.objects.exists()
