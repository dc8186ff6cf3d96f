"""Where the gateway's files live on its host, and the one-symlink swap between releases.

See the package doc for the tree. Nothing here renders or talks to a server.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from ..render import MANIFEST_FILE


@dataclass(frozen=True)
class GatewayPaths:
    root: Path
    nginx_pid_file: Path
    dnsmasq_pid_file: Path

    @classmethod
    def from_settings(cls, root: Path | None = None) -> GatewayPaths:
        base = Path(root or settings.GATEWAY_DIR)
        return cls(
            root=base,
            nginx_pid_file=Path(settings.GATEWAY_NGINX_PID_FILE or base / "run" / "nginx.pid"),
            dnsmasq_pid_file=Path(
                settings.GATEWAY_DNSMASQ_PID_FILE or base / "run" / "dnsmasq.pid"
            ),
        )

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def current(self) -> Path:
        return self.root / "current"

    @property
    def releases(self) -> Path:
        return self.root / "releases"

    @property
    def staging(self) -> Path:
        return self.root / "staging"

    @property
    def nginx_conf(self) -> Path:
        return self.root / "nginx" / "nginx.conf"

    @property
    def nginx_prefix(self) -> Path:
        return self.root / "nginx"

    @property
    def dnsmasq_conf(self) -> Path:
        return self.root / "dnsmasq" / "dnsmasq.conf"

    @property
    def nginx_error_log(self) -> Path:
        return self.run / "logs" / "nginx-error.log"

    # Stream shard i: a nginx of its own, on its own file (render.py, stream.conf.j2).
    def stream_conf(self, shard: int) -> Path:
        return self.root / "nginx" / f"stream-{shard}.conf"

    def stream_pid_file(self, shard: int) -> Path:
        return self.run / f"stream-{shard}.pid"

    def stream_error_log(self, shard: int) -> Path:
        return self.run / "logs" / f"stream-{shard}-error.log"

    def ensure(self, acme_dir: str = "") -> None:
        """The directories and the two fixed symlinks (once; moving real directories aside)."""
        for d in (
            self.root,
            self.run,
            self.run / "logs",
            self.run / "tmp",
            self.releases,
            self.staging,
            Path(acme_dir or self.root / "acme") / ".well-known" / "acme-challenge",
        ):
            d.mkdir(parents=True, exist_ok=True)
        # nginx and dnsmasq drop to `nobody`: they must be able to walk to their files.
        for d in (self.root, self.run, self.run / "logs", self.releases):
            d.chmod(0o755)
        for part in ("nginx", "dnsmasq"):
            link = self.root / part
            if link.is_symlink():
                continue
            if link.exists():  # e.g. var/gateway/dnsmasq made before the first apply
                link.rename(self.releases / f"pre-{part}-{int(time.time())}")
            link.symlink_to(Path("current") / part)

    def live_release(self) -> Path | None:
        if not self.current.is_symlink():
            return None
        target = self.current.resolve()
        return target if target.is_dir() else None

    def live_manifest(self) -> dict[str, Any] | None:
        release = self.live_release()
        if release is None:
            return None
        try:
            manifest: dict[str, Any] = json.loads((release / MANIFEST_FILE).read_text())
            return manifest
        except (OSError, ValueError):
            return None

    def point_current(self, release: Path) -> None:
        tmp = self.root / f".current.{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(Path("releases") / release.name)
        os.replace(tmp, self.current)  # atomic: readers see the old tree or the new one

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One apply at a time on this host (threads and processes alike)."""
        self.run.mkdir(parents=True, exist_ok=True)
        with open(self.run / "apply.lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


def write_tree(files: dict[str, str], directory: Path) -> None:
    for rel, content in files.items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        path.write_text(content)
        path.chmod(0o644)
    for d in [directory, *(p for p in directory.rglob("*") if p.is_dir())]:
        d.chmod(0o755)
