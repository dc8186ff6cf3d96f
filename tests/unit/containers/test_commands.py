"""The operators' `manage.py containers` and `manage.py jobs` (issue #12, item 7): quiet
stderr, a delete that asks first, and job ids by their start.

The commands run as operators run them, in a process of their own on the test database
(and, for the question, on a real terminal: a pseudo-terminal from `pty`)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from containers import services
from containers.models import Container, ContainerStatus, Job, JobKind, JobStatus
from tests.conftest import database_url
from tests.factories import UserFactory, make_site
from tests.testenv import TEST_ENV

pytestmark = pytest.mark.django_db(transaction=True)

BASE = Path(__file__).resolve().parents[3]


@pytest.fixture
def no_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Creates and deletes queue nothing here: these tests are about the commands."""
    monkeypatch.setattr("containers.tasks.enqueue_job", lambda job_id: None)
    monkeypatch.setattr("containers.services.proxmox_used_vmids", lambda site: frozenset())


@pytest.fixture
def site(no_jobs: None) -> Any:
    return make_site(None)


def running(site: Any, hostname: str, owner: Any = None) -> Container:
    """A container as if its create job had run."""
    owner = owner or UserFactory(username=f"owner-{hostname}")
    job = services.container_create(owner=owner, hostname=hostname, template=site.templates.get())
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED)
    Container.objects.filter(pk=job.container_id).update(status=ContainerStatus.RUNNING)
    assert job.container is not None
    return job.container


def command_env(tmp_path: Path) -> dict[str, str]:
    """An operator's environment: this run's database, a file broker, logging at INFO."""
    clean = {k: v for k, v in os.environ.items() if not k.isupper() or k in ("PATH", "HOME")}
    return {
        **clean,
        **TEST_ENV,
        "DATABASE_URL": database_url(),
        "PORTAL_VAR_DIR": str(tmp_path),
        "CELERY_BROKER_URL": "filesystem://",
        "CELERY_BROKER_DIR": str(tmp_path / "broker"),
        "LOG_LEVEL": "INFO",  # the default outside tests: what an operator sees
    }


def manage(*args: str, env: dict[str, str], stdin: Any = subprocess.DEVNULL) -> Any:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE,
        env=env,
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


# -- stderr --------------------------------------------------------------------------------
def test_commands_write_no_library_chatter_on_stderr(site: Any, tmp_path: Path) -> None:
    running(site, "web")
    env = command_env(tmp_path)
    for args in (("jobs", "list"), ("containers", "list")):
        result = manage(*args, env=env)
        assert result.returncode == 0, result.stderr
        assert result.stderr == "", (args, result.stderr)
    # A create queues a job (kombu's file broker): still no AXES or kombu line. A real
    # warning still shows: the site's Proxmox (nothing listens there) cannot be asked.
    owner = UserFactory(username="olga").get_username()
    created = manage(
        "containers", "create", "--owner", owner, "--hostname", "quiet", "--template",
        "debian-12", env=env,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert "queued: create quiet" in created.stdout
    assert "AXES" not in created.stderr and "kombu" not in created.stderr, created.stderr
    assert "cannot list the cluster's guests" in created.stderr
    # The job is in the broker's folder, as a worker would find it.
    assert any((tmp_path / "broker" / "queue").iterdir())


# -- containers delete asks ------------------------------------------------------------------
def test_delete_without_a_terminal_or_yes_is_refused(site: Any, tmp_path: Path) -> None:
    c = running(site, "keep")
    with pytest.raises(CommandError, match="no terminal to confirm on; add --yes"):
        call_command("containers", "delete", "keep", stdin=StringIO("keep\n"))
    result = manage("containers", "delete", "keep", env=command_env(tmp_path))
    assert result.returncode == 1
    assert "not deleting keep: there is no terminal to confirm on; add --yes" in result.stderr
    c.refresh_from_db()
    assert c.status == ContainerStatus.RUNNING
    assert not c.jobs.filter(kind=JobKind.DELETE).exists()


def test_delete_with_yes_does_not_ask(site: Any) -> None:
    c = running(site, "gone")
    out = StringIO()
    call_command("containers", "delete", "gone", "--yes", stdout=out)
    assert "queued: delete gone" in out.getvalue()
    assert c.jobs.filter(kind=JobKind.DELETE).exists()


def ask_on_a_terminal(env: dict[str, str], name: str, answer: str) -> tuple[int, str]:
    """`containers delete NAME` with a pseudo-terminal as stdin: read the question, answer."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "containers", "delete", name],
        cwd=BASE,
        env=env,
        stdin=follower,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    os.close(follower)
    try:
        assert proc.stdout is not None
        # The question ends without a newline: read what comes until it is there.
        seen, deadline = "", time.monotonic() + 60
        while "Type its hostname to confirm:" not in seen:
            assert time.monotonic() < deadline, f"no question; so far: {seen!r}"
            ready, _, _ = select.select([proc.stdout], [], [], 1.0)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 4096).decode()
                assert chunk, f"the command ended without asking: {seen!r}"
                seen += chunk
        os.write(leader, f"{answer}\n".encode())
        rest, err = proc.communicate(timeout=60)
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, seen + rest + err


def test_delete_on_a_terminal_asks_for_the_hostname(site: Any, tmp_path: Path) -> None:
    env = command_env(tmp_path)
    a = running(site, "alpha")
    code, text = ask_on_a_terminal(env, "alpha", "no")
    assert code == 1, text
    assert "Delete alpha (CT" in text and "owner owner-alpha" in text
    assert "not deleting alpha: the answer was not its hostname" in text
    assert not a.jobs.filter(kind=JobKind.DELETE).exists()

    code, text = ask_on_a_terminal(env, "alpha", "alpha")
    assert code == 0, text
    assert "queued: delete alpha" in text
    assert a.jobs.filter(kind=JobKind.DELETE).exists()


# -- jobs show by the start of the id ---------------------------------------------------------
def show(given: str) -> str:
    out = StringIO()
    call_command("jobs", "show", given, stdout=out)
    return out.getvalue()


def shortest_unique_start(ids: list[str], own: str) -> str:
    for n in range(1, 33):
        if sum(other.startswith(own[:n]) for other in ids) == 1:
            return own[:n]
    raise AssertionError("no unique start")


def test_jobs_show_takes_a_unique_start_of_the_id(site: Any) -> None:
    # 17 jobs: two of them share their first hex digit (there are 16).
    jobs = [
        services.container_create(
            owner=UserFactory(username=f"u{i}"), hostname=f"c{i}", template=site.templates.get()
        )
        for i in range(17)
    ]
    ids = [str(j.pk).replace("-", "") for j in jobs]
    job, own = jobs[0], ids[0]

    for given in (str(job.pk), str(job.pk).upper(), shortest_unique_start(ids, own), own[:12]):
        assert show(given).startswith(f"job {job.pk}: create c0"), given
    # As `jobs list` prints it, dashes included.
    assert show(str(job.pk)[:13]).startswith(f"job {job.pk}")

    shared = next(d for d in "0123456789abcdef" if sum(i.startswith(d) for i in ids) > 1)
    count = sum(i.startswith(shared) for i in ids)
    with pytest.raises(CommandError, match=rf"^{shared} is the start of {count} job ids \("):
        show(shared)
    # A version-4 UUID has a 4 as its 13th digit: this start fits no job.
    with pytest.raises(CommandError, match="^no job 0000000000000$"):
        show("0" * 13)
    with pytest.raises(CommandError, match="a job id is hexadecimal"):
        show("not-a-job")
    with pytest.raises(CommandError, match="a job id is hexadecimal"):
        show("")
