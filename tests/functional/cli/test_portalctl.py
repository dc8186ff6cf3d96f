"""portalctl against the real server (gunicorn, Redis, a worker process, the simulator),
run as a subprocess the way a user or a CI script runs it (issue #14)."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from .conftest import Cli, Proxy, have_ssh_stub, user_with_token

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]

TEMPLATE = "debian-12"


def totp(device: Any) -> str:
    from django_otp.oath import TOTP

    device.refresh_from_db()
    return (
        f"{TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift).token():06d}"
    )


def as_user(cli: Cli, token: str) -> Cli:
    cli.env.update(PORTAL_URL=cli.url, PORTAL_TOKEN=token)
    return cli


def test_login_by_password_with_and_without_2fa(cli: Cli, cluster: Any) -> None:
    from auth.models import AuditEntry, AuthenticatorDevice

    user_with_token("ann", password="ann-pw")
    done = cli.ok("login", cli.url, stdin="ann\nann-pw\n")
    assert "as ann" in done.stderr and "ann-pw" not in done.stdout + done.stderr
    assert json.loads(cli.ok("whoami", "--json").stdout)["username"] == "ann"
    wrong = cli("login", cli.url, "-u", "ann", stdin="guess\n")
    assert wrong.returncode == 4 and "wrong username or password" in wrong.stderr
    # The profile still has ann's working token.
    assert json.loads(cli.ok("whoami", "--json").stdout)["username"] == "ann"

    ben, _ = user_with_token("ben", password="ben-pw")
    device = AuthenticatorDevice.objects.create(user=ben, name="phone", confirmed=True)
    # The code is asked for only when the portal says the account needs it.
    done = cli.ok("--profile", "ben", "login", cli.url, stdin=f"ben\nben-pw\n{totp(device)}\n")
    assert "Two-factor code" not in done.stdout and "as ben" in done.stderr
    me = json.loads(cli.ok("-p", "ben", "whoami", "--json").stdout)
    assert me["username"] == "ben" and me["otp_enrolled"] is True
    assert AuditEntry.objects.filter(
        action="login.success", actor_name="ben", summary__contains="2FA"
    ).exists()
    bad = cli("-p", "ben", "login", cli.url, "-u", "ben", "--otp", "000000", stdin="ben-pw\n")
    assert bad.returncode == 4 and "two-factor code is not right" in bad.stderr


def test_create_with_wait_to_running_then_list_json_and_exists(
    cli: Cli, cluster: Any, tmp_path: Path
) -> None:
    _, token = user_with_token("alice")
    as_user(cli, token)
    assert cli("containers", "exists", "web").returncode == 1
    done = cli.ok(
        "containers", "create", "web", "--template", TEMPLATE, "--memory", "512M", "--wait"
    )
    assert done.stdout.startswith("web is running: VMID ")
    assert "step 1/" in done.stderr  # plain progress lines: stderr is not a terminal

    listed = json.loads(cli.ok("containers", "list", "--json").stdout)
    assert [(c["hostname"], c["status"], c["memory_mib"]) for c in listed] == [
        ("web", "running", 512)
    ]
    vmid = str(listed[0]["vmid"])
    assert cli("containers", "exists", "web").returncode == 0
    assert cli("containers", "exists", vmid).returncode == 0
    shown = json.loads(cli.ok("containers", "show", vmid, "--json").stdout)
    assert shown == listed[0]

    # Shell completion (bash here) offers commands and the user's container names.
    def complete(words: str) -> list[str]:
        env = {"COMP_WORDS": words, "COMP_CWORD": str(len(words.split(" ")) - 1)}
        return cli.ok(env={**env, "_PORTALCTL_COMPLETE": "complete_bash"}).stdout.split()

    assert complete("portalctl containers cr") == ["create"]
    assert complete("portalctl containers show w") == ["web"]

    # ssh execs the system's ssh with the gateway's port for the container and the user.
    stub = have_ssh_stub(tmp_path / "bin")
    path = f"{stub.parent}:/usr/bin:/bin"
    ran = cli.ok("ssh", "web", "--", "uname", "-a", env={"PATH": path})
    port = next(p for p in json.loads(cli.ok("ports", "list", "web", "--json").stdout))
    assert ran.stdout.strip() == (
        f"ssh-args: -p {port['external_port']} alice@{shown['fqdn']} uname -a"
    )


def test_resize_stop_start_and_delete_yes(cli: Cli, cluster: Any) -> None:
    from containers.models import Container

    _, token = user_with_token("carl")
    as_user(cli, token)
    cli.ok("containers", "create", "app", "-t", TEMPLATE, "--wait")

    cli.ok("containers", "resize", "app", "--cores", "2", "--disk", "10G", "--wait")
    shown = json.loads(cli.ok("containers", "show", "app", "--json").stdout)
    assert (shown["cores"], shown["disk_gib"], shown["status"]) == (2, 10, "running")

    stopped = json.loads(cli.ok("containers", "stop", "app", "--wait", "--json").stdout)
    assert stopped["job"]["status"] == "succeeded" and stopped["container"]["status"] == "stopped"
    # On a terminal the steps are drawn live (rich): the job, a mark per step, the outcome.
    code, screen = cli.on_terminal("containers", "start", "app", "--wait")
    assert code == 0, screen
    assert "start app (job" in screen and "✓" in screen and "\x1b[" in screen
    assert "app is running" in screen and "step 1/" not in screen  # not the plain lines

    # Without a terminal, delete needs --yes (a usage error, and nothing is done).
    refused = cli("containers", "delete", "app")
    assert refused.returncode == 2 and "--yes" in refused.stderr
    cli.ok("containers", "delete", "app", "--yes", "--wait")
    assert cli("containers", "exists", "app").returncode == 1
    assert Container.objects.get(hostname="app").status == "deleted"


def test_jobs_logs_follow_resumes_across_a_dropped_connection(
    cli: Cli, cluster: Any, proxy: Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.utils import timezone

    from containers import services
    from containers.models import Job

    # A job that no worker takes: the test writes its log and ends it.
    monkeypatch.setattr("containers.tasks.enqueue_job", lambda job_id: None)
    owner, token = user_with_token("dora")
    job = services.container_create(owner=owner, hostname="slow", template=cluster.templates.get())
    cli.env.update(PORTAL_URL=f"http://127.0.0.1:{proxy.port}", PORTAL_TOKEN=token)
    follower = cli.popen("jobs", "logs", str(job.pk), "-f")
    job.log_entries.create(message="first line")
    follower.expect("first line")

    proxy.cut()  # the connection drops mid-stream
    job.log_entries.create(message="second line")
    follower.expect("second line")  # it reconnected, from where it was
    proxy.cut()
    job.log_entries.create(message="third line")
    Job.objects.filter(pk=job.pk).update(status="succeeded", finished_at=timezone.now())

    code, stderr = follower.finish()
    assert code == 0, stderr
    messages = [line.split(None, 2)[2] for line in follower.seen]
    assert messages == ["first line", "second line", "third line"]  # each once, in order
    assert proxy.cuts == 2


def test_exit_codes(cli: Cli, cluster: Any, sim: Any) -> None:
    from django.contrib.auth.models import Group

    from auth.models import GroupPolicy

    eve, token = user_with_token("eve")
    as_user(cli, token)
    assert cli("--version").returncode == 0
    assert cli("containers", "list", "--no-such-option").returncode == 2
    assert cli("containers", "show", "nothing-here").returncode == 3
    invalid = cli("containers", "create", "Not_A_Name", "-t", TEMPLATE)
    assert invalid.returncode == 1 and "hostname" in invalid.stderr
    unreachable = cli("whoami", env={"PORTAL_URL": "http://127.0.0.1:9"})
    assert unreachable.returncode == 1 and "cannot reach" in unreachable.stderr

    # 6: the job failed (Proxmox's create task fails); the error comes from the job.
    sim.admin.fail_next_tasks("vzcreate", message="no space left on device")
    failed = cli("containers", "create", "doomed", "-t", TEMPLATE, "--wait")
    assert failed.returncode == 6, failed.stderr
    assert "failed" in failed.stderr and "no space left" in failed.stderr

    # 5: a conflict: the name is taken; over quota.
    cli.ok("containers", "create", "taken", "-t", TEMPLATE, "--wait")
    again = cli("containers", "create", "taken", "-t", TEMPLATE)
    assert again.returncode == 5 and "already taken" in again.stderr
    group = Group.objects.create(name="tight")
    eve.groups.add(group)
    GroupPolicy.objects.create(group=group, max_containers=1)
    over = cli("containers", "create", "more", "-t", TEMPLATE)
    assert over.returncode == 5 and "quota" in over.stderr.lower(), over.stderr

    # 4: a revoked token (logout revokes it), and no token at all.
    cli.ok("logout")
    revoked = cli("containers", "list")
    assert revoked.returncode == 4, revoked.stderr
    assert cli("whoami", env={"PORTAL_TOKEN": ""}).returncode == 4


def test_a_second_create_with_the_same_idempotency_key_makes_one_container(
    cli: Cli, cluster: Any
) -> None:
    from containers.models import Container

    _, token = user_with_token("fay")
    as_user(cli, token)
    args = ["containers", "create", "once", "-t", TEMPLATE, "--json", "--idempotency-key", "ci-42"]
    first = json.loads(cli.ok(*args).stdout)
    second = json.loads(cli.ok(*args, "--wait").stdout)
    assert second["job"]["id"] == first["job"]["id"]
    assert second["container"]["id"] == first["container"]["id"]
    assert second["job"]["status"] == "succeeded"
    assert Container.objects.filter(hostname="once").count() == 1
    # The key with other parameters is refused, not quietly taken for another container.
    other = cli("containers", "create", "twice", "-t", TEMPLATE, "--idempotency-key", "ci-42")
    assert other.returncode == 5 and "Idempotency-Key" in other.stderr


def test_config_file_mode_and_profiles(cli: Cli, cluster: Any) -> None:
    from auth.models import ApiToken

    _, gus_token = user_with_token("gus")
    _, hal_token = user_with_token("hal", scope="read")
    cli.ok("login", cli.url, "--with-token", stdin=gus_token + "\n")
    cli.ok("--profile", "ci", "login", cli.url, "--with-token", stdin=hal_token + "\n")

    mode = stat.S_IMODE(cli.config.stat().st_mode)
    assert mode == 0o600, oct(mode)
    assert stat.S_IMODE(cli.config.parent.stat().st_mode) == 0o700
    text = cli.config.read_text()
    assert "[default]" in text and "[ci]" in text and gus_token in text and hal_token in text

    def who(*args: str, **kwargs: Any) -> str:
        return str(json.loads(cli.ok(*args, "whoami", "--json", **kwargs).stdout)["username"])

    assert who() == "gus"
    assert who("--profile", "ci") == "hal"
    assert who(env={"PORTALCTL_PROFILE": "ci"}) == "hal"
    # The environment wins over the profile.
    assert who(env={"PORTAL_URL": cli.url, "PORTAL_TOKEN": hal_token}) == "hal"

    cli.ok("-p", "ci", "logout")
    assert ApiToken.objects.get(user__username="hal").revoked_at is not None
    assert ApiToken.objects.get(user__username="gus").revoked_at is None
    assert hal_token not in cli.config.read_text() and gus_token in cli.config.read_text()
    assert stat.S_IMODE(cli.config.stat().st_mode) == 0o600
    assert who() == "gus"
    assert cli("-p", "ci", "whoami").returncode == 4


def test_show_and_extend_expiry(cli: Cli, cluster: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from containers import services
    from containers.models import Container

    monkeypatch.setattr("containers.tasks.enqueue_job", lambda job_id: None)  # no build needed
    owner, token = user_with_token("erin")
    as_user(cli, token)
    # The client of this tree, whichever checkout the console script was installed from.
    cli.env["PYTHONPATH"] = str(Path(__file__).resolve().parents[3] / "portalctl" / "src")
    job = services.container_create(owner=owner, hostname="tmp", template=cluster.templates.get())
    soon = timezone.now() + timedelta(days=2)
    Container.objects.filter(pk=job.container_id).update(expires_at=soon)

    shown = cli.ok("containers", "show", "tmp").stdout
    assert "expires" in shown and "portalctl containers extend tmp --days N" in shown
    extended = json.loads(cli.ok("containers", "extend", "tmp", "--days", "3", "--json").stdout)
    assert extended["expires_at"].startswith((soon + timedelta(days=3)).date().isoformat())
    assert Container.objects.get(pk=job.container_id).expires_at == soon + timedelta(days=3)
    said = cli.ok("containers", "extend", "tmp", "--days", "1").stdout
    assert said.startswith("tmp expires ")
    too_long = cli("containers", "extend", "tmp", "--days", "400")
    assert too_long.returncode == 1 and "at most" in too_long.stderr


def test_nodes_list_shows_what_the_probe_read(cli: Cli, cluster: Any) -> None:
    from containers.tasks import probe_nodes
    from networking.models import Node

    _, token = user_with_token("operator", is_staff=True)
    as_user(cli, token)
    cli.env["PYTHONPATH"] = str(Path(__file__).resolve().parents[3] / "portalctl" / "src")
    probe_nodes()  # the beat probe, once: each node's capacity and load from its status
    pve1 = Node.objects.get(name="pve1")
    assert pve1.load_1 is not None and pve1.cpu_load is not None and pve1.max_memory

    listed = {n["name"]: n for n in json.loads(cli.ok("nodes", "list", "--json").stdout)}
    shown = [listed["pve1"][k] for k in ("cpu_load", "load_1", "load_5", "load_15")]
    assert shown == [pve1.cpu_load, pve1.load_1, pve1.load_5, pve1.load_15]
    screen = cli.ok("nodes", "list").stdout
    assert "LOAD 1/5/15" in screen.splitlines()[0]
    line = next(row for row in screen.splitlines() if row.split()[:1] == ["pve1"])
    loads = " ".join(f"{v:.2f}" for v in (pve1.load_1, pve1.load_5, pve1.load_15))
    assert f"{pve1.cpu_load * 100:.1f}% of 16" in line and loads in line, line
    memory = f"{(pve1.used_memory or 0) / (1 << 30):.1f}/{pve1.max_memory / (1 << 30):.1f} GiB"
    assert memory in line, line
