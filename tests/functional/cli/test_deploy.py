"""portalctl deploy and portalctl deployments against the live portal (gunicorn, Redis, a
worker, the simulator), run as a subprocess from a real git checkout (LaunchPad, #15).

Without an app running: a deploy whose job fails (exit 6), `--no-wait`, the 409 wait and
resend, the server's validation and the client's own, list, show, extend, destroy and
not-found. With one (the guest emulation's stack, tests/fixtures/launchpad.py): a deploy
that goes live, an update in place, the app's log, destroy. No env value ever appears in
what portalctl prints.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from .conftest import Cli, user_with_token

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]

SECRET = "hush-9f3c2e"  # an env value: it must never be printed
GIT_ENV = {
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.org",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.org",
}


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **GIT_ENV},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def checkout(path: Path, *, origin: str | None = None) -> str:
    """A git repository with one commit on `main` (a tiny app); its commit id."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    (path / "app.py").write_text("print('hello')\n")
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "the app")
    if origin:
        git(path, "remote", "add", "origin", origin)
    return git(path, "rev-parse", "HEAD")


def as_user(cli: Cli, username: str) -> Any:
    user, token = user_with_token(username)
    cli.env.update(PORTAL_URL=cli.url, PORTAL_TOKEN=token)
    return user


def said(done: subprocess.CompletedProcess[str]) -> str:
    text = done.stdout + done.stderr
    assert SECRET not in text
    return text


def test_a_failed_deploy_exits_6_then_list_show_extend_and_destroy(
    cli: Cli, cluster: Any, sim: Any
) -> None:
    from containers.models import Deployment

    as_user(cli, "lena")
    head = checkout(cli.home / "shop")  # no origin: the repository is lena/shop
    (cli.home / "shop" / "notes.txt").write_text("not committed\n")

    # --no-wait: the push's answer, with its job, and nothing else on stdout.
    sim.admin.fail_next_tasks("vzcreate", message="no space left on device")
    args = ["deploy", "shop", "--start", "python3 app.py", "--env", f"SECRET_KEY={SECRET}"]
    done = cli.ok(*args, "--no-wait", "--json", "--ttl", "3")
    said(done)
    answer = json.loads(done.stdout)
    assert (answer["name"], answer["outcome"], answer["repository"]) == (
        "lena-shop-main",
        "created",
        "lena/shop",
    )
    assert answer["commit"] == head and answer["env_names"] == ["SECRET_KEY"]
    assert answer["job"]["kind"] == "deploy" and answer["job"]["id"]
    assert "uncommitted changes" in done.stderr and head[:12] in done.stderr
    followed = cli("jobs", "logs", "-f", answer["job"]["id"])
    assert followed.returncode == 6 and "no space left" in said(followed)

    # Waiting (the default): the job's steps on stderr, its failure as exit 6.
    sim.admin.fail_next_tasks("vzcreate", message="no space left on device")
    failed = cli(*args)
    assert failed.returncode == 6, failed.stderr
    assert "no space left" in said(failed) and "step 1/" in failed.stderr
    assert failed.stdout == ""
    deployment = Deployment.objects.get(name="lena-shop-main")
    assert (deployment.repository, deployment.ref, deployment.commit) == ("lena/shop", "main", head)
    assert deployment.state == "failed"

    listed = json.loads(cli.ok("deployments", "list", "--json").stdout)
    assert [(d["name"], d["state"]) for d in listed] == [("lena-shop-main", "failed")]
    table = cli.ok("deployments", "list", "--repository", "lena/shop", "--ref", "main").stdout
    assert "lena-shop-main" in table and "failed" in table
    assert json.loads(cli.ok("deployments", "list", "--ref", "dev", "--json").stdout) == []
    shown = json.loads(cli.ok("deployments", "show", "lena-shop-main", "--json").stdout)
    assert shown["env_names"] == ["SECRET_KEY"] and shown["app"]["start"] == "python3 app.py"
    people = cli.ok("deployments", "show", "lena-shop-main")
    assert "lena/shop" in said(people) and "SECRET_KEY" in people.stdout

    extended = json.loads(
        cli.ok("deployments", "extend", "lena-shop-main", "--days", "5", "--json").stdout
    )
    deployment.refresh_from_db()
    assert deployment.expires_at is not None
    assert extended["expires_at"].startswith(deployment.expires_at.date().isoformat())
    too_long = cli("deployments", "extend", "lena-shop-main", "--days", "9999")
    assert too_long.returncode == 1 and "days" in too_long.stderr

    # By repository and ref: the name is looked up first.
    cli.ok("deployments", "destroy", "--repository", "lena/shop", "--ref", "main", "--wait")
    assert Deployment.objects.get(pk=deployment.pk).state == "removed"
    assert json.loads(cli.ok("deployments", "list", "--json").stdout) == []
    gone = cli("deployments", "destroy", "--repository", "lena/shop", "--ref", "main")
    assert gone.returncode == 3 and "no deployment of lena/shop at main" in gone.stderr


def test_not_found_and_usage(cli: Cli, cluster: Any) -> None:
    as_user(cli, "nina")
    for args in (
        ("deployments", "show", "nothing-here"),
        ("deployments", "destroy", "nothing-here"),
        ("deployments", "extend", "nothing-here", "--days", "2"),
        ("deployments", "logs", "nothing-here"),
    ):
        done = cli(*args)
        assert done.returncode == 3, (args, done.stderr)
    assert cli("deployments", "destroy").returncode == 2
    assert cli("deployments", "destroy", "x", "--repository", "a/b", "--ref", "c").returncode == 2
    assert cli("deployments", "destroy", "--repository", "a/b").returncode == 2


def test_the_servers_validation_and_the_clients_own(cli: Cli, cluster: Any) -> None:
    from containers.models import Deployment

    as_user(cli, "olga")
    cluster.templates.update(os_type="debian")  # the services a deploy knows are Debian's
    checkout(cli.home / "web", origin="git@github.com:acme/web.git")
    base = ["deploy", "web", "--start", "python3 app.py"]

    def refused(code: int, *args: str) -> str:
        done = cli(*args)
        assert done.returncode == code, (args, done.returncode, done.stderr)
        return said(done)

    # The portal's answers (400: exit 1), its message on stderr.
    assert "env name '1BAD' is not a variable name" in refused(1, *base, "--env", f"1BAD={SECRET}")
    assert "env PORT is set by the portal" in refused(1, *base, "--env", "PORT=9000")
    assert "nosuch: not a service" in refused(1, *base, "--services", "postgresql,nosuch")
    assert "needs a start command" in refused(1, "deploy", "web")
    # The client's own (exit 2), before anything is sent.
    bad_json = cli.home / "env.json"
    bad_json.write_text(f'{{"SECRET_KEY": "{SECRET}",}}')
    assert "invalid JSON at line 1" in refused(2, *base, "--env-file", str(bad_json))
    nested = cli.home / "env.yml"
    nested.write_text(f"app:\n  key: {SECRET}\n")
    assert "line 2: nested YAML" in refused(2, *base, "--env-file", str(nested))
    assert "write it as KEY=VALUE" in refused(2, *base, "--env", SECRET)
    assert "--access" in refused(2, *base, "--access", "everyone")
    assert "no commit 'nope'" in refused(2, *base, "--commit", "nope")
    assert "not in a git checkout" in refused(2, "deploy", str(cli.home), "--start", "x")
    git(cli.home / "web", "checkout", "-q", "--detach")
    assert "HEAD is detached" in refused(2, *base)
    assert Deployment.objects.count() == 0


def test_a_push_while_a_job_runs_waits_for_it_and_is_sent_again(
    cli: Cli, cluster: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.utils import timezone

    from containers.deployments import deployment_put
    from containers.models import Deployment, Job

    # The first push's job stays queued: no worker takes it (the test ends it).
    monkeypatch.setattr("containers.tasks.enqueue_job", lambda job_id: None)
    user = as_user(cli, "pia")
    head = checkout(cli.home / "site", origin="https://github.com/pia/site.git")
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz"):
        pass
    archive.seek(0)
    first = deployment_put(
        actor=user,
        repository="pia/site",
        ref="main",
        commit="a" * 40,
        committed_at=timezone.now() - timedelta(hours=1),
        template=cluster.templates.get(),
        source=archive,
        app={"start": "python3 app.py"},
    )
    assert first.job is not None
    args = ["deploy", "site", "--start", "python3 app.py", "--env", f"SECRET_KEY={SECRET}"]

    # Within --timeout: it waits, then gives up with the conflict's exit code.
    done = cli(*args, "--timeout", "2")
    assert done.returncode == 5, done.stderr
    assert "waiting for deploy pia-site-main" in said(done)
    assert "still running after --timeout" in done.stderr

    # The job ends while it waits, and a newer push has been recorded meanwhile: the
    # push sent again is superseded (exit 0), as the portal decided.
    running = cli.popen(*args, "--json", stream="stderr")
    running.expect("waiting for deploy pia-site-main", timeout=30)
    Deployment.objects.filter(pk=first.deployment.pk).update(
        committed_at=timezone.now() + timedelta(hours=1)
    )
    Job.objects.filter(pk=first.job.pk).update(status="failed", finished_at=timezone.now())
    code, stdout = running.finish(timeout=60)
    stderr = "\n".join(running.seen)
    assert code == 0, stderr
    answer = json.loads(stdout)
    assert answer["outcome"] == "superseded" and answer["commit"] == "a" * 40
    assert "superseded" in stderr and SECRET not in stdout + stderr
    assert Deployment.objects.get(pk=first.deployment.pk).commit != head


# -- a deploy that goes live (guest emulation: tests/fixtures/launchpad.py) -----------------
EXAMPLE = Path(__file__).resolve().parents[3] / "deploy" / "launchpad" / "example"


@pytest.mark.gateway
def test_deploy_goes_live_in_place_then_logs_and_destroy(
    launchpad_stack: Any, tmp_path: Path
) -> None:
    import shutil

    from containers.models import Container

    stack = launchpad_stack
    _, token = stack.user("quinn")
    cli = Cli(home=tmp_path / "home", url=stack.url, env={"PORTAL_URL": stack.url})
    cli.env["PORTAL_TOKEN"] = token
    repo = cli.home / "shop"
    shutil.copytree(EXAMPLE, repo)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "the example app")
    git(repo, "remote", "add", "origin", "https://github.com/acme/shop.git")
    first = git(repo, "rev-parse", "HEAD")
    env_file = tmp_path / "deploy.env"
    env_file.write_text(f"GREETING={SECRET}\n")
    args = ["deploy", "shop", "--install", "python3 app.py install", "--start", "python3 app.py"]

    done = cli(*args, "--env-file", str(env_file))
    assert done.returncode == 0, done.stderr
    assert SECRET not in said(done)
    lines = dict(line.split(None, 1) for line in done.stdout.splitlines())
    assert lines["url"].startswith("https://acme-shop-main.") and lines["ssh"].startswith("ssh ")
    assert lines["container"] == "acme-shop-main" and lines["commit"] == first[:12]
    assert "step 1/" in done.stderr  # the job followed, in plain lines
    page = stack.wait_get("acme-shop-main")
    assert page.status == 200 and f"release {first[:12]}" in page.body, page
    vmid = Container.objects.get(hostname="acme-shop-main").vmid

    # The next commit, in place; --json prints the deployment and nothing else.
    (repo / "app.py").write_text(
        (repo / "app.py").read_text().replace("example app", "example app, v2")
    )
    git(repo, "commit", "-qam", "v2")
    second = git(repo, "rev-parse", "HEAD")
    done = cli(*args, "--env", "GREETING=Hi", "--json")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert (shown["state"], shown["serving_commit"]) == ("live", second)
    assert "Hi from the LaunchPad example app, v2" in stack.wait_get("acme-shop-main").body
    assert Container.objects.get(hostname="acme-shop-main").vmid == vmid

    # The app's own log (its journal), masked where it shows a value.
    logged = cli.ok("deployments", "logs", "acme-shop-main", "-n", "50")
    assert logged.stdout.strip() and SECRET not in logged.stdout

    removed = cli.ok("deployments", "destroy", "acme-shop-main", "--wait")
    assert removed.stdout.strip() == "acme-shop-main is removed"
    shown = json.loads(cli.ok("deployments", "show", "acme-shop-main", "--json").stdout)
    assert shown["state"] == "removed"  # kept for its history
    assert json.loads(cli.ok("deployments", "list", "--json").stdout) == []
