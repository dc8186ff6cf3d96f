"""A LaunchPad deployment's first push takes its container from the warm pool (issue #18),
end to end: the push through the REST API, the real deploy job in the session's worker,
the simulator with guest emulation and the gateway serving the app (launchpad_stack)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from auth.sshkeys import ssh_key_add
from containers import deployments, services
from containers.deploy_key import deploy_public_key
from containers.deploy_sources import source_path
from containers.jobs.deploy import DEPLOY_STEPS
from containers.models import Container, ContainerStatus, Deployment, JobLogEntry, JobStatus
from containers.pool.claim import MEMBER_PARAM
from containers.pool.models import POOL_TAG, PoolMember, PoolMemberState
from containers.pool.services import pool_target_set
from containers.proxmox import ProxmoxClient
from containers.tags import tag_set
from networking.models import Node
from tests.conftest import wait_job
from tests.factories import UserFactory
from tests.fixtures.launchpad import ExampleRepo
from tests.functional.containers.test_pool_claim_e2e import (
    CLAIM_STEPS,
    FAULTS,
    block_key_install,
    fill,
    hits_and_misses,
    keypair,
    ssh_as,
)
from tests.functional.launchpad.test_deploy import APP, _log, push

pytestmark = [pytest.mark.e2e, pytest.mark.gateway, pytest.mark.django_db(transaction=True)]

NAME = "acme-shop-main"


def pusher(stack: Any, tmp_path: Path, username: str) -> tuple[Any, str, str]:
    """A user with an SSH key of their own and an API token; their key's private file and
    public line."""
    user, token = stack.user(username)
    key, public = keypair(tmp_path)
    ssh_key_add(user=user, key=public, name="laptop")
    return key, public, token


def authorized_keys(stack: Any, c: Container) -> set[str]:
    text = (stack.guest_dir / str(c.vmid) / ".ssh" / "authorized_keys").read_text()
    return {" ".join(line.split()[:2]) for line in text.splitlines() if line.strip()}


def what_a_first_push_gives(public: str) -> set[str]:
    """The owner's key and the portal's deploy key: later pushes log in with the latter."""
    return {" ".join(k.split()[:2]) for k in (public, deploy_public_key())}


def test_a_first_push_takes_a_ready_member_and_serves_the_commit(
    launchpad_stack: Any, tmp_path: Path
) -> None:
    stack = launchpad_stack
    members = {m.vmid: m for m in fill(stack.site, pve1=1, pve2=1)}
    key, public, token = pusher(stack, tmp_path, "dana")
    repo = ExampleRepo(tmp_path / "shop")
    first = repo.git("rev-parse", "HEAD")

    answer = push(stack, token, repo, first)
    assert answer.status_code == 201, answer.text
    job = wait_job(answer.json()["job"]["id"], timeout=120)
    assert job.status == JobStatus.SUCCEEDED, (job.error, _log(job))
    # The claim's steps, then the deploy's; the first lines say where it came from.
    assert [s["name"] for s in job.steps] == [*CLAIM_STEPS, *dict(DEPLOY_STEPS)]
    assert job.params[MEMBER_PARAM]
    log = list(JobLogEntry.objects.filter(job=job).order_by("id").values_list("message", flat=True))
    assert "from the warm pool" in log[0] and log[1].startswith("from the pool: CT"), log[:3]
    assert any("the portal's deploy key stays" in line for line in log), log

    c = Container.objects.select_related("node").get(pk=job.container_id)
    assert c.status == ContainerStatus.RUNNING and c.hostname == NAME
    assert c.vmid in members and members[c.vmid].node == c.node  # the member's CT
    assert not PoolMember.objects.filter(vmid=c.vmid).exists()
    assert hits_and_misses() == (1, 0)
    cfg = ProxmoxClient.for_node(c.node).container_config(c.node.name, c.vmid)
    assert cfg["hostname"] == NAME and POOL_TAG not in tag_set(cfg["tags"])

    # The app serves the commit through the gateway.
    page = stack.wait_get(NAME)
    assert page.status == 200, page
    assert f"release {first[:12]}" in page.body
    deployment = Deployment.objects.get(name=NAME)
    assert deployment.state == "live" and deployment.serving_commit == first

    # Root's keys are those a normal first push gives: the owner's and the deploy key.
    assert authorized_keys(stack, c) == what_a_first_push_gives(public)
    assert ssh_as(key, c.ip) == 0
    assert stack.remote(c).run("true", timeout=20) == 0

    # A second push is deployed in place, logging in with the deploy key it kept.
    second = repo.change("v2")
    answer = push(stack, token, repo, second)
    assert answer.status_code == 200 and answer.json()["outcome"] == "updated", answer.text
    job = wait_job(answer.json()["job"]["id"], timeout=120)
    assert job.status == JobStatus.SUCCEEDED, (job.error, _log(job))
    assert f"release {second[:12]}" in stack.wait_get(NAME).body
    assert hits_and_misses() == (1, 0)  # an update claims nothing


def test_a_first_push_with_an_empty_pool_makes_its_container(
    launchpad_stack: Any, tmp_path: Path
) -> None:
    stack = launchpad_stack
    for name in ("pve1", "pve2"):
        node = Node.objects.get(site=stack.site, name=name)
        # A pool is on, but nothing was made yet.
        pool_target_set(template=stack.template, node=node, target=1, actor=None)
    key, public, token = pusher(stack, tmp_path, "erin")
    repo = ExampleRepo(tmp_path / "shop")
    first = repo.git("rev-parse", "HEAD")

    answer = push(stack, token, repo, first)
    job = wait_job(answer.json()["job"]["id"], timeout=120)
    assert job.status == JobStatus.SUCCEEDED, (job.error, _log(job))
    assert job.steps[0]["name"] == "create" and MEMBER_PARAM not in job.params
    assert hits_and_misses() == (0, 1)
    assert f"release {first[:12]}" in stack.wait_get(NAME).body
    c = Container.objects.get(pk=job.container_id)
    # The same keys as a claimed first push's.
    assert authorized_keys(stack, c) == what_a_first_push_gives(public)
    assert ssh_as(key, c.ip) == 0


@pytest.mark.parametrize("step", ["configure", "start", "ssh_keys"])
def test_a_failed_claim_step_of_a_push_leaves_nothing_half_made(
    launchpad_stack: Any, tmp_path: Path, step: str
) -> None:
    stack = launchpad_stack
    (member,) = fill(stack.site, pve1=1)
    if step == "ssh_keys":
        block_key_install(stack.guest_dir / str(member.vmid) / ".ssh")
    else:
        FAULTS[step](stack.sim)
    _, _, token = pusher(stack, tmp_path, "finn")
    repo = ExampleRepo(tmp_path / "shop")
    first = repo.git("rev-parse", "HEAD")

    answer = push(stack, token, repo, first)
    assert answer.status_code == 201, answer.text
    job = wait_job(answer.json()["job"]["id"], timeout=120)
    assert job.status == JobStatus.FAILED, _log(job)
    assert job.params[MEMBER_PARAM] == member.pk
    failed = [s["name"] for s in job.steps if s["state"] == "failed"]
    assert failed == [step], (failed, job.error)
    assert all(s["state"] == "pending" for s in job.steps if s["name"] in dict(DEPLOY_STEPS))
    # The claim's undo ran: the container is deleted (its name, address and MAC free) ...
    c = Container.objects.get(pk=job.container_id)
    assert c.status == ContainerStatus.DELETED
    guests = {int(g["vmid"]): g for g in stack.sim.admin.guests()}
    assert not any(g.get("name") == NAME for g in guests.values()), guests
    if step == "configure":
        # ... its member, never touched, is back in the pool as the refill made it ...
        assert PoolMember.objects.get(pk=member.pk).state == PoolMemberState.READY
        cfg = ProxmoxClient.for_node(member.node).container_config("pve1", member.vmid)
        assert cfg["hostname"] == f"pool-{member.vmid}" and POOL_TAG in tag_set(cfg["tags"])
    else:
        # ... or its partly configured CT is destroyed, and the member forgotten.
        assert member.vmid not in guests
        assert not PoolMember.objects.filter(pk=member.pk).exists()
    assert "was not touched" in job.error or "was removed" in job.error, job.error
    # ... the deployment is failed with the job's message, and the source is gone.
    deployment = Deployment.objects.get(name=NAME)
    assert deployment.state == "failed" and deployment.serving_commit == ""
    assert deployment.state_message == job.error[:500]
    assert not source_path(job.params["source"]).exists()

    # The next push makes the deployment's container cleanly.
    answer = push(stack, token, repo, repo.change("again"))
    assert answer.status_code == 200, answer.text
    again = wait_job(answer.json()["job"]["id"], timeout=120)
    assert again.status == JobStatus.SUCCEEDED, (again.error, _log(again))
    assert stack.wait_get(NAME).status == 200


def test_a_push_cancelled_before_it_ran_returns_its_member(
    cluster: Any, own_workers: Any, tmp_path: Path
) -> None:
    """The workers are paused: the push's job is still queued when it is cancelled."""
    (member,) = fill(cluster, pve1=1)
    owner, _ = _user_with_key(tmp_path)
    repo = ExampleRepo(tmp_path / "shop")
    first = repo.git("rev-parse", "HEAD")
    put = deployments.deployment_put(
        actor=owner,
        repository="acme/shop",
        ref="main",
        commit=first,
        template=cluster.templates.get(),
        source=io.BytesIO(repo.archive(first)),
        app=APP,
    )
    assert put.job is not None and put.job.params[MEMBER_PARAM] == member.pk
    assert hits_and_misses() == (1, 0)
    assert services.job_cancel(job=put.job, actor=None)
    assert PoolMember.objects.get(pk=member.pk).state == PoolMemberState.READY
    c = Container.objects.get(pk=put.job.container_id)
    assert c.status == ContainerStatus.DELETED
    assert Deployment.objects.get(pk=put.deployment.pk).state == "failed"
    assert not source_path(put.job.params["source"]).exists()


def _user_with_key(tmp_path: Path) -> tuple[Any, str]:
    user = UserFactory(username="gail")
    _, public = keypair(tmp_path)
    ssh_key_add(user=user, key=public, name="laptop")
    return user, public
