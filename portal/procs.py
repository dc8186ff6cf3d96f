"""Starting and stopping the local servers the demo and the tests need.

Every server binds loopback only, lives in a private directory, and is stopped by
the PID it was started with (never by name).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def find_binary(name: str) -> str | None:
    """The executable `name` (on PATH, else in /usr/sbin or /usr/bin), or None.

    A name with a slash is taken as a path. The sbin directories are searched even when
    they are not on PATH: nginx, dnsmasq and slapd live there.
    """
    if "/" in name:
        return name if os.access(name, os.X_OK) else None
    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def free_ports(count: int, host: str = "127.0.0.1", *, tries: int = 100) -> int:
    """The first of `count` consecutive TCP ports free on `host` now (for servers that
    derive ports from one setting: the gateway's status port and its shards')."""
    for _ in range(tries):
        first = free_port(host)
        if first + count > 65536:
            continue
        if all(port_free(first + i, host=host) for i in range(1, count)):
            return first
    raise OSError(f"no {count} consecutive free ports on {host}")


def port_free(port: int, *, udp: bool = False, host: str = "127.0.0.1") -> bool:
    """True if this machine lets us bind `host:port` now (TCP, or UDP)."""
    kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as s:
        if not udp:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def wait_until(
    check: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.05
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s")


def port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
        return True
    return False


def pid_alive(pid: int) -> bool:
    """True while the process runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def stop_pid(
    pid: int, *, sig: int = signal.SIGTERM, timeout: float = 10.0, group: bool = False
) -> None:
    """Signal a process (or its group), wait for it to go, then SIGKILL what is left."""
    send = os.killpg if group else os.kill
    with contextlib.suppress(ProcessLookupError, PermissionError):
        send(pid, sig)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            send(pid, signal.SIGKILL)


class Managed:
    """A child process in its own session, with its output in a log file."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd or BASE_DIR
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> Managed:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            self.argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
        )
        log.close()
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, *, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL the whole process group at once: what a crashed host looks like."""
        self.stop(sig=signal.SIGKILL, timeout=5)


class RedisServer:
    """A private redis-server on a free loopback port, keeping nothing on disk."""

    def __init__(self, run_dir: Path, port: int | None = None) -> None:
        self.run_dir = run_dir
        self.port = port or free_port()
        self.process: Managed | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = find_binary("redis-server")
        if not binary:
            raise FileNotFoundError("redis-server is not installed (apt-get install redis-server)")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.process = Managed(
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.run_dir),
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            log_path=self.run_dir / "redis.log",
        ).start()
        wait_until(lambda: port_open("127.0.0.1", self.port), timeout=10, what="redis")
        return self

    def stop(self) -> None:
        if self.process:
            self.process.stop()


class CeleryWorker:
    """A real `celery worker` process for the portal, with a readiness check."""

    def __init__(
        self,
        *,
        log_path: Path,
        env: Mapping[str, str],
        queues: str = "proxmox",
        concurrency: int = 8,
        name: str = "worker",
        pool: str = "threads",
        beat: bool = False,
    ) -> None:
        self.log_path = log_path
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "portal",
            "worker",
            "-Q",
            queues,
            f"--pool={pool}",
            f"--concurrency={concurrency}",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            f"--hostname={name}@%h",
            "--loglevel=INFO",
        ]
        if beat:
            argv += ["--beat", "--schedule", str(log_path.with_suffix(".beat"))]
        self.process = Managed(argv, log_path=log_path, env={**os.environ, **env})

    def start(self, timeout: float = 30.0) -> CeleryWorker:
        with contextlib.suppress(FileNotFoundError):
            self.log_path.unlink()
        self.process.start()

        def ready() -> bool:
            if not self.process.alive():
                raise RuntimeError(f"the celery worker exited:\n{self.process.log_text()[-3000:]}")
            return " ready." in self.process.log_text()

        wait_until(ready, timeout=timeout, what="celery worker")
        return self

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        self.process.stop(timeout=20)

    def kill(self) -> None:
        self.process.kill()
