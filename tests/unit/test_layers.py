"""The import layers of docs/architecture.md hold, and breaking them fails `make check`.

`lint-imports` reads `.importlinter`; the second test copies the code, adds one import
that runs upwards (the networking core importing containers), and expects the contract
to name it. The third does the same for portalctl, the client, which may import nothing
of the server.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("portal", "networking", "auth", "containers")


def _lint(where: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT), "--no-cache"],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_code_keeps_its_layers() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


def test_an_import_that_runs_upwards_breaks_the_contract(tmp_path: Path) -> None:
    for name in PACKAGES:
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    allocation = tmp_path / "networking" / "allocation.py"
    allocation.write_text(allocation.read_text() + "\nfrom containers import services\n")

    result = _lint(tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "networking.allocation -> containers.services" in result.stdout


def test_the_client_importing_the_server_breaks_its_contract(tmp_path: Path) -> None:
    for name in (*PACKAGES, "pvesim"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(
        ROOT / "portalctl" / "src" / "portalctl",
        tmp_path / "portalctl",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    client = tmp_path / "portalctl" / "client.py"
    client.write_text(client.read_text() + "\nfrom portal import errors\n")

    result = _lint(tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "portalctl.client -> portal.errors" in result.stdout
