"""Another revision of this repository, exported to a directory, for before/after benches.

The export gets this tree's `bench/` package, so both sides are measured by the same
code; each side runs in a process of its own, with the export as its working directory.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def export_revision(rev: str, into: Path) -> Path:
    """`rev`'s files in `into` (a new directory), with this tree's bench package."""
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", rev], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    shutil.copytree(
        REPO / "bench",
        into / "bench",
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return into


def describe(rev: str) -> str:
    """`rev` as an abbreviated hash and subject line."""
    out = subprocess.run(
        ["git", "-C", str(REPO), "log", "-1", "--format=%h %s", rev],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return out or rev
