"""A CT's start, run as the CT's user before its sshd starts: an empty /run, the
stand-ins on PATH, the hostname, the create-time SSH keys and the template's packages
(once), the enabled units."""

from __future__ import annotations

import json
import os
import shutil
import sys

from .apt import preinstall
from .layout import ROOT_ENV, TOOLS, Layout
from .service import ServiceManager

BOOT_ENV = "PVESIM_BOOT"


def shim(python: str, pyz: str, tool: str) -> str:
    return f'#!/bin/sh\nexec {python} {pyz} {tool} "$@"\n'


def prepare(layout: Layout, *, hostname: str, keys: str | None, python: str) -> None:
    root = layout.root
    if layout.run.is_dir() and not layout.run.is_symlink():
        shutil.rmtree(layout.run)
    elif layout.run.is_symlink():
        layout.run.unlink()
    for directory in (
        layout.bin,
        layout.etc_units,
        layout.unit_state,
        layout.journal,
        layout.dpkg_status.parent,
    ):
        directory.mkdir(parents=True, exist_ok=True)
    (root / "etc" / "hostname").write_text(hostname + "\n")
    for tool in TOOLS:
        path = layout.bin / tool
        tmp = path.with_name(f".{tool}.new")
        tmp.write_text(shim(python, str(layout.pyz), tool))
        tmp.chmod(0o755)
        os.replace(tmp, path)
    ssh = root / ".ssh"
    authorized = ssh / "authorized_keys"
    if keys is not None and not authorized.exists() and not authorized.is_symlink():
        ssh.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(authorized, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(keys if keys.endswith("\n") else keys + "\n")


def main(layout: Layout) -> int:
    payload = json.loads(os.environ.get(BOOT_ENV) or "{}")
    os.environ.pop(BOOT_ENV, None)
    os.environ.update(layout.env())
    os.environ[ROOT_ENV] = str(layout.root)
    os.chdir(layout.root)
    prepare(
        layout,
        hostname=str(payload.get("hostname") or "localhost"),
        keys=payload.get("keys"),
        python=str(payload.get("python") or sys.executable),
    )
    preinstall(layout, [str(p) for p in payload.get("packages") or []])
    started = ServiceManager(layout).boot()
    print("started at boot: " + (", ".join(started) or "nothing"))
    return 0
