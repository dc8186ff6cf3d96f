"""The deploy's shell: declared values are quoted, the env travels on standard input and
lands in a 0600 file, and the generated commands run as written (in a real `sh`, with the
container's root moved under a temporary directory as the guest emulation does)."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from containers import deploy_script as ds
from portal.errors import ValidationFailed

TRICKY = {"DATABASE_URL": "postgres://u:p@h/db?x=1&y=2", "QUOTE": 'it\'s "quoted" $HOME `id` \\n'}


def run(step: ds.Step, root: Path, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    """Run a step's command in a real sh, with the container's root at `root`."""
    bin_dir = root / "bin"
    bin_dir.mkdir(exist_ok=True)
    systemctl = bin_dir / "systemctl"  # records what it is asked
    systemctl.write_text(f'#!/bin/sh\necho "$@" >> {root}/systemctl.log\n')
    systemctl.chmod(0o755)
    return subprocess.run(
        ["sh", "-c", step.command],
        input=stdin if stdin is not None else step.stdin,
        capture_output=True,
        check=False,
        env={**os.environ, "PVESIM_GUEST_ROOT": str(root), "PATH": f"{bin_dir}:/usr/bin:/bin"},
    )


def test_the_env_file_is_0600_and_holds_each_value_exactly(tmp_path: Path) -> None:
    (tmp_path / "srv" / "releases" / "r1").mkdir(parents=True)
    step = ds.switch_step("r1", ds.unit_files({"start": "x"}, description="d"), TRICKY)
    assert "hunter" not in step.command and "postgres://" not in step.command
    result = run(step, tmp_path)
    assert result.returncode == 0, result.stderr
    written = tmp_path / "etc" / "cluster-portal" / "app.env"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    unit = tmp_path / "etc" / "systemd" / "system" / "app.service"
    assert stat.S_IMODE(unit.stat().st_mode) == 0o644
    # systemd's EnvironmentFile reading: KEY="value" with backslash escapes, no expansion.
    parsed = {}
    for line in written.read_text().splitlines():
        key, _, quoted = line.partition("=")
        parsed[key] = quoted[1:-1].encode().decode("unicode_escape")
    assert parsed == TRICKY


def test_a_declared_command_sees_the_env_and_nothing_leaks_into_its_command_line(
    tmp_path: Path,
) -> None:
    (tmp_path / "srv" / "releases" / "r1").mkdir(parents=True)
    step = ds.command_step(
        "install",
        "Install",
        'printf "%s|%s" "$DATABASE_URL" "$QUOTE" > out',
        env=TRICKY,
        release="r1",
    )
    assert "postgres://" not in step.command
    result = run(step, tmp_path)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "srv" / "releases" / "r1" / "out"
    assert out.read_text() == f"{TRICKY['DATABASE_URL']}|{TRICKY['QUOTE']}"


def test_a_failing_command_fails_the_step(tmp_path: Path) -> None:
    (tmp_path / "srv" / "releases" / "r1").mkdir(parents=True)
    step = ds.command_step("build", "Build", "echo building; exit 7", env={}, release="r1")
    result = run(step, tmp_path)
    assert result.returncode == 7 and result.stdout == b"building\n"


def test_services_map_to_the_distributions_packages_and_units() -> None:
    apt = ds.services_step("debian", ["postgresql", "redis"])
    assert apt is not None
    assert "apt-get install -y postgresql redis-server" in apt.command
    assert "apt-get update" in apt.command
    assert apt.command.endswith("systemctl enable --now postgresql redis-server")
    dnf = ds.services_step("rockylinux", ["mongodb"])
    assert dnf is not None and "dnf install -y mongodb-org" in dnf.command
    assert ds.services_step("ubuntu", []) is None
    with pytest.raises(ValidationFailed, match="mongodb: not a service debian packages"):
        ds.services_step("debian", ["mongodb"])
    with pytest.raises(ValidationFailed, match="package manager"):
        ds.services_step("plan9", ["redis"])


def test_the_unit_runs_the_start_command_in_the_app_directory() -> None:
    text = ds.unit_text("node server.js --port 3000 && echo 'up'", description="acme/shop@main")
    assert "WorkingDirectory=/srv/app\n" in text
    assert f"EnvironmentFile=-{ds.ENV_FILE}\n" in text
    line = next(x for x in text.splitlines() if x.startswith("ExecStart="))
    assert line == "ExecStart=/bin/sh -c 'node server.js --port 3000 && echo '\"'\"'up'\"'\"''"
    with pytest.raises(ValidationFailed):
        ds.unit_text("one\ntwo", description="x")


def test_a_release_is_unpacked_switched_to_rolled_back_and_pruned(tmp_path: Path) -> None:
    """The release steps, run in order as a deploy runs them, then a rollback: the second
    release adds a worker process, the rollback stops it and puts the first back."""
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "app.py").write_text("v1")
    packed = subprocess.run(
        ["tar", "-czf", "-", "-C", str(tree), "."], capture_output=True, check=True
    ).stdout
    apps = {
        "aaa-1": {"start": "python3 aaa-1.py"},
        "bbb-2": {"start": "python3 bbb-2.py", "processes": {"worker": "python3 work.py"}},
    }
    for release, app in apps.items():
        result = run(ds.source_step(release), tmp_path, stdin=packed)
        assert result.returncode == 0, result.stderr
        assert b"unpacked 1 files" in result.stdout
        units = ds.unit_files(app, description="acme/shop")
        result = run(ds.switch_step(release, units, {"RELEASE": release}), tmp_path)
        assert result.returncode == 0, result.stderr
        serving = result.stdout.decode().splitlines()[0]
    app_dir = tmp_path / "srv" / "app"
    assert os.readlink(app_dir) == "releases/bbb-2" and (app_dir / "app.py").read_text() == "v1"
    assert serving == "serving before: releases/aaa-1"  # said by the second switch
    units_dir = tmp_path / "etc" / "systemd" / "system"
    env = tmp_path / "etc" / "cluster-portal" / "app.env"
    listed = tmp_path / "etc" / "cluster-portal" / "units"
    assert "ExecStart=/bin/sh -c 'python3 bbb-2.py'" in (units_dir / "app.service").read_text()
    worker = units_dir / "app-worker.service"
    assert "ExecStart=/bin/sh -c 'python3 work.py'" in worker.read_text()
    assert listed.read_text().split() == ["app", "app-worker"]
    assert env.read_text() == 'RELEASE="bbb-2"\n'
    log = (tmp_path / "systemctl.log").read_text()
    assert "restart app.service app-worker.service" in log
    # A failed health check goes back to what served before: tree, env and units.
    back = run(ds.rollback_step(), tmp_path)
    assert back.returncode == 0 and back.stdout.decode().splitlines()[-1] == (
        "serving again: releases/aaa-1"
    )
    assert os.readlink(app_dir) == "releases/aaa-1"
    assert "ExecStart=/bin/sh -c 'python3 aaa-1.py'" in (units_dir / "app.service").read_text()
    assert not worker.exists() and listed.read_text().split() == ["app"]
    assert "disable --now app-worker.service" in (tmp_path / "systemctl.log").read_text()
    assert env.read_text() == 'RELEASE="aaa-1"\n'
    # Pruning keeps the newest and never the one that serves.
    assert run(ds.source_step("ccc-3"), tmp_path, stdin=packed).returncode == 0
    assert run(ds.prune_step(1), tmp_path).returncode == 0
    left = sorted(p.name for p in (tmp_path / "srv" / "releases").iterdir())
    assert left == ["aaa-1", "ccc-3"]


def test_a_first_deploy_that_fails_is_rolled_back_to_nothing(tmp_path: Path) -> None:
    (tmp_path / "srv" / "releases" / "r1").mkdir(parents=True)
    units = ds.unit_files({"start": "x"}, description="d")
    first = run(ds.switch_step("r1", units, {}), tmp_path)
    assert first.returncode == 0 and first.stdout.decode().startswith("serving before: \n")
    back = run(ds.rollback_step(), tmp_path)
    assert back.returncode == 0 and back.stdout.decode().endswith("serving again: \n")
    assert not (tmp_path / "etc" / "systemd" / "system" / "app.service").exists()
    assert "disable --now app.service" in (tmp_path / "systemctl.log").read_text()


def test_the_runtime_log_reads_every_unit_of_the_app() -> None:
    units = ds.unit_names({"start": "x", "processes": {"worker": "y", "beat": "z"}})
    assert units == ["app", "app-beat", "app-worker"]
    assert ds.logs_command(units, lines=50, follow=True) == (
        "journalctl -u app.service -u app-beat.service -u app-worker.service -n 50 --no-pager -f"
    )


def test_units_that_did_not_change_are_only_restarted(tmp_path: Path) -> None:
    for release in ("r1", "r2"):
        (tmp_path / "srv" / "releases" / release).mkdir(parents=True)
        units = ds.unit_files({"start": "python3 app.py"}, description="acme/shop")
        assert run(ds.switch_step(release, units, {}), tmp_path).returncode == 0
    calls = (tmp_path / "systemctl.log").read_text().splitlines()
    first = ["daemon-reload", "enable app.service", "restart app.service"]
    assert calls == [*first, "restart app.service"]  # the second switch only restarts
