"""The path LaunchPad's deploy job takes, walked by hand on the stack (tests/fixtures/
launchpad.py): the real create job makes a CT with the portal's deploy key, the worker's
SSH runner logs in to it, a systemd unit starts the example app (deploy/launchpad/example)
on the CT's address, and nginx serves it at the container's subdomain."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from containers import services
from containers.deploy_key import deploy_public_key
from networking.publishing import route_update
from tests.conftest import wait_job

pytestmark = [pytest.mark.e2e, pytest.mark.gateway, pytest.mark.django_db(transaction=True)]

EXAMPLE = Path(__file__).resolve().parents[3] / "deploy" / "launchpad" / "example" / "app.py"
UNIT = """\
[Unit]
Description=The example app

[Service]
WorkingDirectory=/srv/app
EnvironmentFile=/etc/cluster-portal/app.env
ExecStart=/usr/bin/python3 app.py

[Install]
WantedBy=multi-user.target
"""


def run(remote: Any, command: str, stdin: bytes = b"") -> list[str]:
    lines: list[str] = []
    code = remote.run(command, stdin=stdin, on_line=lines.append, timeout=60)
    assert code == 0, (command, code, lines)
    return lines


def test_a_ct_made_by_the_create_job_serves_its_app_through_nginx(launchpad_stack: Any) -> None:
    stack = launchpad_stack
    began = time.monotonic()
    owner, token = stack.user("dana")
    mine = requests.get(
        f"{stack.url}/api/v1/containers/", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert mine.status_code == 200, mine.text

    job = services.container_create(
        owner=owner,
        hostname="hello",
        template=stack.template,
        ssh_public_keys=deploy_public_key() + "\n",
    )
    job = wait_job(job.pk)
    assert job.status == "succeeded", job.error
    c = job.container
    assert stack.resolve("hello") == [c.ip]
    created = time.monotonic()

    # The CT's sshd moves to the portal's address once the gateway serves its reservation.
    remote = stack.remote(c)
    remote.wait_ready(timeout=30, poll=0.2)
    uid, root = run(remote, 'id -u; echo "$PVESIM_GUEST_ROOT"')
    assert uid == "65534" and root == str(stack.guest_dir / str(c.vmid))
    ssh_ready = time.monotonic()

    # What the deploy will do: the release, its install step, the env, the unit.
    prefix = '"$PVESIM_GUEST_ROOT"'
    release = f"{prefix}/srv/releases/r1"
    run(remote, f"mkdir -p {release} && cat > {release}/app.py", stdin=EXAMPLE.read_bytes())
    installed = run(remote, f"cd {release} && python3 app.py install")
    assert installed[0].startswith("wrote build-info.txt: release r1 installed at")
    run(remote, f"ln -sfn releases/r1 {prefix}/srv/app")
    env = f"HOST={c.ip}\nPORT=8000\nGREETING=Hi from the stack\n".encode()
    run(
        remote,
        f"mkdir -p {prefix}/etc/cluster-portal && umask 077 && "
        f"cat > {prefix}/etc/cluster-portal/app.env",
        stdin=env,
    )
    run(remote, f"cat > {prefix}/etc/systemd/system/app.service", stdin=UNIT.encode())
    run(remote, "systemctl daemon-reload && systemctl enable --now app.service")
    assert run(remote, "systemctl is-active app.service") == ["active"]

    # Its default route, open to anyone, on the app's port; applied by the gateway worker.
    route = c.routes.get(name="")
    route_update(route=route, backend_port=8000, access="public", actor=owner)
    stack.apply("route to the app")
    got = stack.wait_get("hello")
    assert got.status == 200, (got.status, got.body[:300])
    assert got.body.splitlines()[0] == "Hi from the stack from the LaunchPad example app"
    assert got.body.splitlines()[1].startswith("release r1 installed at ")
    # The app's log is the unit's journal.
    journal = run(remote, "journalctl -u app.service -n 20")
    assert f"listening on http://{c.ip}:8000/" in journal
    print(
        f"create job {created - began:.1f} s, ssh ready after {ssh_ready - created:.1f} s, "
        f"app served after {time.monotonic() - ssh_ready:.1f} s"
    )


def _example_commit(repo: Path) -> tuple[str, bytes]:
    """deploy/launchpad/example as a git repository of its own: (commit, git archive)."""
    shutil.copytree(EXAMPLE.parent, repo)

    def git(*args: str) -> bytes:
        return subprocess.run(
            ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.test", *args],
            check=True,
            capture_output=True,
        ).stdout

    git("init", "-q", "-b", "main")
    git("add", ".")
    git("commit", "-q", "-m", "the example")
    commit = git("rev-parse", "HEAD").decode().strip()
    return commit, git("archive", "--format=tar.gz", commit)


def test_the_deploy_api_serves_the_example_app_through_nginx(
    launchpad_stack: Any, tmp_path: Path
) -> None:
    """The same path through the real thing: POST /api/v1/deployments/, one job."""
    stack = launchpad_stack
    _, token = stack.user("erin")
    auth = {"Authorization": f"Bearer {token}"}
    commit, archive = _example_commit(tmp_path / "shop")
    spec = {
        "repository": "erin/shop",
        "ref": "main",
        "commit": commit,
        "template": "debian-12",
        "app": {"install": "python3 app.py install", "start": "python3 app.py", "port": 8000},
        "env": {"GREETING": "Hi from the API"},
    }
    answer = requests.post(
        f"{stack.url}/api/v1/deployments/",
        headers=auth,
        data={"spec": json.dumps(spec)},
        files={"source": ("source.tar.gz", archive, "application/gzip")},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["name"] == "erin-shop-main"
    job = wait_job(body["job"]["id"], timeout=90)
    log = "\n".join(e.message for e in job.log_entries.order_by("id"))
    assert job.status == "succeeded", log[-4000:]
    got = stack.wait_get("erin-shop-main")
    assert got.status == 200, (got.status, got.body[:300])
    assert got.body.splitlines()[0] == "Hi from the API from the LaunchPad example app"
    # The release directory is named after the commit (docs/launchpad.md).
    assert got.body.splitlines()[1].startswith(f"release {commit[:12]}")
    assert "Hi from the API" not in log  # env values never reach the job log
