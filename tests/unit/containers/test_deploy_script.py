"""The deploy's shell: declared values are quoted, the env travels on standard input and
lands in a 0600 file, and the generated commands run as written (in a real `sh`)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from containers import deploy_script as ds
from portal.errors import ValidationFailed

TRICKY = {"DATABASE_URL": "postgres://u:p@h/db?x=1&y=2", "QUOTE": 'it\'s "quoted" $HOME `id` \\n'}


def run(step: ds.Step, root: Path) -> subprocess.CompletedProcess[str]:
    """Run a step's command in a real sh, with the container's paths moved under `root`."""
    command = step.command.replace(ds.APP_DIR, str(root / "app")).replace(
        "/etc/cluster-portal", str(root / "etc")
    )
    return subprocess.run(
        ["sh", "-c", command],
        input=step.stdin.decode(),
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_env_file_is_0600_and_holds_each_value_exactly(tmp_path: Path) -> None:
    step = ds.env_step(json.dumps(TRICKY))
    assert "hunter" not in step.command and "postgres://" not in step.command
    result = run(step, tmp_path)
    assert result.returncode == 0, result.stderr
    written = tmp_path / "etc" / "app.env"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    # systemd's EnvironmentFile reading: KEY="value" with backslash escapes, no expansion.
    parsed = {}
    for line in written.read_text().splitlines():
        key, _, quoted = line.partition("=")
        parsed[key] = quoted[1:-1].encode().decode("unicode_escape")
    assert parsed == TRICKY


def test_a_declared_command_sees_the_env_and_nothing_leaks_into_its_command_line(
    tmp_path: Path,
) -> None:
    (tmp_path / "app").mkdir()
    step = ds.command_step(
        "install",
        "Install",
        'printf "%s|%s" "$DATABASE_URL" "$QUOTE" > out',
        env_json=json.dumps(TRICKY),
    )
    assert "postgres://" not in step.command
    result = run(step, tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "app" / "out").read_text() == f"{TRICKY['DATABASE_URL']}|{TRICKY['QUOTE']}"


def test_a_failing_command_fails_the_step(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    step = ds.command_step("build", "Build", "echo building; exit 7", env_json="{}")
    result = run(step, tmp_path)
    assert result.returncode == 7 and result.stdout == "building\n"


def test_services_map_to_the_distributions_packages_and_units() -> None:
    apt = ds.services_step("debian", ["postgresql", "redis"])
    assert apt is not None
    assert "apt-get install -y postgresql redis-server" in apt.command
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


def test_the_unit_step_writes_its_unit_from_stdin(tmp_path: Path) -> None:
    step = ds.unit_step("python3 -m http.server", description="acme/shop@main")
    assert step.stdin.decode() == ds.unit_text(
        "python3 -m http.server", description="acme/shop@main"
    )
    assert (
        os.path.basename(ds.UNIT_DIR) in step.command
        and "systemctl restart app.service" in step.command
    )
