"""Where a CT's files are: its directory stands for its root filesystem.

The CT is no chroot: its processes see the host's ``/usr``, ``/bin`` and ``/etc``. The
CT's own files live under its directory (``root``), and a path a unit file names inside
the CT (``/srv/app``, ``/etc/cluster-portal/app.env``) is looked up under ``root`` first
and on the host second (:meth:`Layout.inside`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT_ENV = "PVESIM_GUEST_ROOT"
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PYZ = "usr/lib/pvesim/guestos.pyz"
TOOLS = ("apt-get", "apt", "dpkg", "dpkg-query", "systemctl", "journalctl", "service")


class Layout:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    # -- directories ---------------------------------------------------------------------
    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def etc_units(self) -> Path:
        """Where an admin writes units (and ``*.wants/`` links for enabled ones)."""
        return self.root / "etc" / "systemd" / "system"

    @property
    def package_units(self) -> Path:
        """Where the apt stand-in puts the units of the packages it installs."""
        return self.root / "usr" / "lib" / "systemd" / "system"

    @property
    def unit_dirs(self) -> list[Path]:
        """systemd's search order: /etc, /run, then the packages' directories."""
        return [
            self.etc_units,
            self.root / "run" / "systemd" / "system",
            self.package_units,
            self.root / "lib" / "systemd" / "system",
        ]

    @property
    def run(self) -> Path:
        """The CT's /run: emptied at every CT start, as a tmpfs would be."""
        return self.root / "run"

    @property
    def unit_state(self) -> Path:
        """``NAME.pid`` (main PID of a running unit) and ``NAME.state`` files."""
        return self.root / "run" / "systemd" / "units"

    @property
    def journal(self) -> Path:
        """One log per unit, ``NAME.log``: the unit's stdout and stderr."""
        return self.root / "var" / "log" / "journal"

    @property
    def dpkg_status(self) -> Path:
        """Installed packages, in dpkg's status-file format."""
        return self.root / "var" / "lib" / "dpkg" / "status"

    @property
    def pyz(self) -> Path:
        return self.root / PYZ

    # -- paths inside the CT ---------------------------------------------------------------
    def inside(self, path: str) -> Path:
        """A path as the CT names it -> the host path: under the CT's directory when it
        exists there or not on the host, else the host's own (``/usr/bin/python3``)."""
        if not path.startswith("/"):
            return self.root / path
        try:
            if Path(path).is_relative_to(self.root):
                return Path(path)
        except ValueError:
            pass
        mine = self.root / path.lstrip("/")
        if mine.exists() or mine.is_symlink() or not Path(path).exists():
            return mine
        return Path(path)

    def display(self, path: Path) -> str:
        """A host path under the CT's directory as the CT names it."""
        try:
            return "/" + str(Path(path).relative_to(self.root))
        except ValueError:
            return str(path)

    def env(self) -> dict[str, str]:
        """The base environment of the CT's sessions and units."""
        return {
            "PATH": f"{self.bin}:{HOST_PATH}",
            "HOME": str(self.root),
            "LANG": "C.UTF-8",
            "USER": "root",
            "LOGNAME": "root",
            "SHELL": "/bin/bash",
            ROOT_ENV: str(self.root),
        }


def find_root(argv0: str | None = None) -> Path:
    """The CT's directory: from where this code was unpacked (``<ct>/usr/lib/pvesim/...``),
    else from ``PVESIM_GUEST_ROOT``."""
    here = Path(argv0 or sys.argv[0]).resolve()
    if here.name == Path(PYZ).name and here.parent.name == "pvesim":
        return here.parents[3]
    env = os.environ.get(ROOT_ENV)
    if env:
        return Path(env)
    raise SystemExit("pvesim guest tools: cannot tell which CT this is (PVESIM_GUEST_ROOT unset)")
