"""portalctl installed alone into a fresh venv (no Django, nothing of the server), offline
from the wheels `make install` keeps in .venv/portalctl-wheels, then run against the live
server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import ROOT, user_with_token

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]

WHEELS = Path(sys.prefix) / "portalctl-wheels"


def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    # No pip configuration from the machine: the wheels here, and nothing else.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PORTAL"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.update(kwargs.pop("env", {}))
    done = subprocess.run(
        argv, capture_output=True, text=True, env=env, timeout=180, check=False, **kwargs
    )
    assert done.returncode == 0, (argv, done.stdout, done.stderr)
    return done


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not WHEELS.is_dir():
        pytest.fail(f"{WHEELS} is missing: `make install` makes it (pip wheel ./portalctl)")
    base = tmp_path_factory.mktemp("fresh")
    # The wheel of the client as it is now, built from a copy (the checkout stays clean).
    # The client as it is now, from a copy (its build leaves the checkout alone), built
    # and installed as `pip install ./portalctl` would: only the wheels are offline.
    source = base / "portalctl"
    shutil.copytree(
        ROOT / "portalctl",
        source,
        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"),
    )
    venv = base / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
         "-q", "--no-index", "--find-links", str(WHEELS), str(source)])  # fmt: skip
    return venv


def test_portalctl_alone_in_a_fresh_venv_runs_against_the_server(
    fresh_venv: Path, web: str, cluster: Any, tmp_path: Path
) -> None:
    python = fresh_venv / "bin" / "python"
    for server_part in ("django", "rest_framework", "portal", "containers", "celery"):
        probe = subprocess.run(
            [str(python), "-c", f"import {server_part}"], capture_output=True, cwd=tmp_path
        )
        assert probe.returncode != 0, f"{server_part} is importable in the fresh venv"

    _, token = user_with_token("ivy")
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    portalctl = str(fresh_venv / "bin" / "portalctl")
    assert run([portalctl, "--version"], cwd=tmp_path).stdout.startswith("portalctl ")
    run([portalctl, "login", web, "--with-token"], input=token, env=env, cwd=tmp_path)
    done = run(
        [portalctl, "containers", "create", "fresh", "-t", "debian-12", "--wait", "--json"],
        env=env,
        cwd=tmp_path,
    )
    assert json.loads(done.stdout)["container"]["status"] == "running"
    listed = json.loads(
        run([portalctl, "containers", "list", "--json"], env=env, cwd=tmp_path).stdout
    )
    assert [c["hostname"] for c in listed] == ["fresh"]
