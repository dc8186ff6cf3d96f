"""The action's first step, run as a runner runs it: bash, with RUNNER_TEMP,
GITHUB_ACTION_PATH and GITHUB_OUTPUT set. It makes a venv, installs the portalctl of the
action's own repository into it (offline here, from the wheels `make install` keeps), and
hands the next step its path; a second run reuses the venv."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[3]
ACTION = ROOT / "deploy" / "launchpad"
WHEELS = Path(sys.prefix) / "portalctl-wheels"


def install_step() -> str:
    steps = yaml.safe_load((ACTION / "action.yml").read_text())["runs"]["steps"]
    return next(s["run"] for s in steps if s.get("id") == "portalctl")


def test_the_install_step_puts_portalctl_in_a_venv_and_outputs_its_path(tmp_path: Path) -> None:
    if not WHEELS.is_dir():
        pytest.fail(f"{WHEELS} is missing: `make install` makes it (pip wheel ./portalctl)")
    output = tmp_path / "github_output"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PORTAL"))}
    env.update(
        RUNNER_TEMP=str(tmp_path / "runner-temp"),
        GITHUB_ACTION_PATH=str(ACTION),
        GITHUB_OUTPUT=str(output),
        LAUNCHPAD_SPEC="",  # the input left empty: the action's own portalctl
        # Offline: what the runner would fetch from PyPI comes from the wheels here.
        PIP_CONFIG_FILE=os.devnull,
        PIP_NO_INDEX="1",
        PIP_FIND_LINKS=str(WHEELS),
    )
    (tmp_path / "runner-temp").mkdir()
    for _ in range(2):
        done = subprocess.run(
            ["bash", "-c", install_step()],
            capture_output=True,
            text=True,
            env=env,
            timeout=200,
            check=False,
        )
        assert done.returncode == 0, (done.stdout, done.stderr)
        assert done.stdout.startswith("portalctl ")  # its --version
    lines = output.read_text().splitlines()
    assert lines == [f"bin={tmp_path}/runner-temp/launchpad-venv/bin/portalctl"] * 2
    portalctl = Path(lines[0].removeprefix("bin="))
    help_text = subprocess.run(
        [str(portalctl), "deploy", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "--env-file" in help_text
