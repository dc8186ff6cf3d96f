"""LaunchPad end to end through the REST API: a push deploys the example app into a new
container and nginx serves it; a second push updates in place; a failing build keeps
the old release serving; the env reaches the app and nowhere else; destroy removes the
container, its route and its DNS name. The worker, the simulator (guest emulation) and
the gateway are the real ones (tests/fixtures/launchpad.py)."""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from containers.models import Container, Deployment, Job, JobLogEntry
from tests.conftest import wait_job
from tests.fixtures.launchpad import ExampleRepo

pytestmark = [pytest.mark.e2e, pytest.mark.gateway, pytest.mark.django_db(transaction=True)]

SECRET = "s3cret-value-never-shown"
APP = {"install": "python3 app.py install", "start": "python3 app.py", "port": 8000}


def push(stack: Any, token: str, repo: ExampleRepo, commit: str, **spec: Any) -> requests.Response:
    body = {"repository": "acme/shop", "ref": "main", "commit": commit, "app": APP, **spec}
    return requests.post(
        f"{stack.url}/api/v1/deployments/",
        headers={"Authorization": f"Bearer {token}"},
        data={"spec": json.dumps(body)},
        files={"source": ("source.tar.gz", io.BytesIO(repo.archive(commit)), "application/gzip")},
        timeout=30,
    )


def test_push_update_failed_build_and_destroy(launchpad_stack: Any, tmp_path: Path) -> None:
    stack = launchpad_stack
    _, token = stack.user("dana")
    auth = {"Authorization": f"Bearer {token}"}
    repo = ExampleRepo(tmp_path / "shop")
    first = repo.git("rev-parse", "HEAD")

    # The first push: one job creates the container and deploys into it.
    answer = push(stack, token, repo, first, env={"GREETING": SECRET})
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["outcome"] == "created" and body["name"] == "acme-shop-main"
    assert SECRET not in answer.text and body["env_names"] == ["GREETING"]
    job = wait_job(body["job"]["id"], timeout=120)
    assert job.status == "succeeded", _log(job)
    page = stack.wait_get("acme-shop-main")
    assert page.status == 200, page
    assert page.body.startswith(f"{SECRET} from the LaunchPad example app")
    assert f"release {first[:12]}" in page.body  # the install step ran in its release
    container = Container.objects.get(hostname="acme-shop-main")
    vmid = container.vmid
    shown = requests.get(
        f"{stack.url}/api/v1/deployments/acme-shop-main/", headers=auth, timeout=10
    )
    assert shown.json()["state"] == "live" and shown.json()["serving_commit"] == first
    assert shown.json()["url"].startswith("https://acme-shop-main.")

    # The env's value is in no log line, no API answer (masked where the app printed it).
    assert SECRET not in _log(job)
    assert SECRET not in shown.text

    # A second commit is deployed in place: the same container, the new answer.
    (repo.path / "app.py").write_text(
        (repo.path / "app.py").read_text().replace("example app", "example app, v2")
    )
    second = repo.commit("v2")
    answer = push(stack, token, repo, second, env={"GREETING": "Hi"})
    assert answer.status_code == 200 and answer.json()["outcome"] == "updated", answer.text
    job = wait_job(answer.json()["job"]["id"], timeout=120)
    assert job.status == "succeeded", (job.error, _log(job))
    assert job.steps[0]["name"] == "ssh"  # no create: an update
    page = stack.wait_get("acme-shop-main")
    assert "Hi from the LaunchPad example app, v2" in page.body, page
    assert Container.objects.get(hostname="acme-shop-main").vmid == vmid
    assert Container.objects.filter(hostname="acme-shop-main").count() == 1

    # A failing build leaves the previous release serving, and says so.
    (repo.path / "NEWS").write_text("this one does not build\n")
    third = repo.commit("does not build")
    answer = push(stack, token, repo, third, app={**APP, "build": "echo compiling; exit 3"})
    job = wait_job(answer.json()["job"]["id"], timeout=120)
    assert job.status == "failed" and job.error_code == "deploy_failed"
    assert "at step 'Run the build command': it exited with status 3" in job.error
    assert f"The previous release ({second[:12]}) still serves" in job.error
    assert "compiling" in _log(job)
    deployment = Deployment.objects.get(name="acme-shop-main")
    assert deployment.state == "failed" and deployment.serving_commit == second
    assert "example app, v2" in stack.get("acme-shop-main").body

    # Destroy: the container, its route and its DNS name go.
    gone = requests.delete(
        f"{stack.url}/api/v1/deployments/acme-shop-main/", headers=auth, timeout=10
    )
    assert gone.status_code == 202, gone.text
    job = wait_job(gone.json()["job"]["id"], timeout=120)
    assert job.status == "succeeded", job.error
    deployment.refresh_from_db()
    assert deployment.state == "removed"
    stack.apply("after the destroy")
    assert stack.get("acme-shop-main").status in (404, 421, 502)
    assert stack.resolve("acme-shop-main") == []
    assert not Container.objects.filter(hostname="acme-shop-main", status="running").exists()


def test_a_failing_health_check_goes_back_to_the_previous_release(
    launchpad_stack: Any, tmp_path: Path
) -> None:
    stack = launchpad_stack
    _, token = stack.user("erin")
    repo = ExampleRepo(tmp_path / "shop")
    first = repo.git("rev-parse", "HEAD")
    job = wait_job(push(stack, token, repo, first).json()["job"]["id"], timeout=120)
    assert job.status == "succeeded", (job.error, _log(job))
    assert "Hello from" in stack.wait_get("acme-shop-main").body

    # This commit's app starts but listens on another port: the health check fails, and
    # the switch is undone.
    (repo.path / "NEWS").write_text("listens elsewhere\n")
    second = repo.commit("wrong port")
    answer = push(stack, token, repo, second, app={**APP, "start": "PORT=8001 python3 app.py"})
    job = wait_job(answer.json()["job"]["id"], timeout=180)
    assert job.status == "failed", _log(job)
    assert "did not answer on port 8000" in job.error
    assert "The previous release" in job.error and "serves again" in job.error
    assert "Hello from" in stack.wait_get("acme-shop-main").body


def _log(job: Job) -> str:
    entries = JobLogEntry.objects.filter(job=job).order_by("id")
    return "\n".join(f"[{e.step}] {e.message}" for e in entries)


def test_five_concurrent_pushes_of_one_branch_give_one_container(
    launchpad_stack: Any, tmp_path: Path
) -> None:
    """Through the web server and the database's locks: one push creates, the others are
    told a job is running (the CLI waits for it and sends its push again)."""
    stack = launchpad_stack
    _, token = stack.user("finn")
    repo = ExampleRepo(tmp_path / "shop")
    commits = [repo.git("rev-parse", "HEAD")]
    for n in range(4):
        (repo.path / "NEWS").write_text(f"change {n}\n")
        commits.append(repo.commit(f"change {n}"))
    start = threading.Barrier(5)
    answers: list[requests.Response] = []

    def one(commit: str) -> None:
        start.wait()
        answers.append(push(stack, token, repo, commit))

    threads = [threading.Thread(target=one, args=(c,)) for c in commits]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(a.status_code for a in answers)
    assert codes == [201, 409, 409, 409, 409], [a.text for a in answers]
    created = next(a.json() for a in answers if a.status_code == 201)
    busy = [a.json() for a in answers if a.status_code == 409]
    assert all(b["code"] == "job_in_progress" for b in busy)
    assert all(b["detail"]["job"] == created["job"]["id"] for b in busy)
    assert Container.objects.filter(hostname="acme-shop-main").count() == 1
    assert Deployment.objects.count() == 1
    job = wait_job(created["job"]["id"], timeout=120)
    assert job.status == "succeeded", _log(job)


def test_declared_services_and_processes_run_and_their_logs_are_read(
    launchpad_stack: Any, tmp_path: Path
) -> None:
    stack = launchpad_stack
    stack.template.os_type = "debian"  # what Proxmox's Debian template reports
    stack.template.save(update_fields=["os_type"])
    _, token = stack.user("gail")
    auth = {"Authorization": f"Bearer {token}"}
    repo = ExampleRepo(tmp_path / "shop")
    (repo.path / "worker.sh").write_text('while :; do echo "worker saw $GREETING"; sleep 1; done\n')
    commit = repo.commit("a worker")
    app = {**APP, "services": ["redis"], "processes": {"worker": "sh worker.sh"}}
    answer = push(stack, token, repo, commit, app=app, env={"GREETING": SECRET})
    job = wait_job(answer.json()["job"]["id"], timeout=120)
    assert job.status == "succeeded", _log(job)
    assert "redis-server" in _log(job)  # apt's own lines, streamed
    container = Container.objects.get(hostname="acme-shop-main")
    remote = stack.remote(container)
    states: list[str] = []
    code = remote.run(
        "systemctl is-active redis-server app.service app-worker.service", on_line=states.append
    )
    assert (code, states) == (0, ["active", "active", "active"])
    # The runtime log: the journal of every unit of the app, the env's values masked.
    url = f"{stack.url}/api/v1/deployments/acme-shop-main/logs/?lines=50"
    for _ in range(20):
        lines = requests.get(url, headers=auth, timeout=30).json()["lines"]
        if any("worker saw" in line for line in lines):
            break
        time.sleep(0.5)
    assert any(line.endswith("worker saw ***") for line in lines), lines
    assert not any(SECRET in line for line in lines)
    assert any("listening on http://" in line for line in lines)
