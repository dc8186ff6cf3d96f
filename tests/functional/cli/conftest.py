"""portalctl run as a user runs it: a subprocess against the shipped web server (gunicorn,
deploy/gunicorn.conf.py) on the test database, with the session's Redis, worker and
simulator behind it. One server per module; each test has its own config directory."""

from __future__ import annotations

import contextlib
import os
import pty
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from portal.procs import free_port
from tests.conftest import gunicorn

ROOT = Path(__file__).resolve().parents[3]


def portalctl_path() -> str:
    """The console script installed beside this Python (make install: -e ./portalctl)."""
    script = Path(sys.executable).with_name("portalctl")
    if not script.exists():
        pytest.fail(f"{script} is missing: install the client (pip install -e ./portalctl)")
    return str(script)


@pytest.fixture(scope="module")
def web(worker: Any, worker_env: dict[str, str], redis_url: str, run_dir: Path) -> Iterator[str]:
    """gunicorn with the shipped configuration: jobs go to the session's worker."""
    cache_url = redis_url.rsplit("/", 1)[0] + "/6"
    port = free_port()
    env = {
        **os.environ,
        **worker_env,
        "CACHE_URL": cache_url,
        "ALLOWED_HOSTS": "127.0.0.1",
        "WEB_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "1",
        "WEB_THREADS": "8",
        "WEB_GRACEFUL_TIMEOUT": "2",
        "LOCAL_LOGIN_FOR_USERS": "true",  # the tests' users have local passwords
        "API_LOGIN_THROTTLE_RATE": "1000/minute",
        "OTP_TOTP_THROTTLE_FACTOR": "0",
    }
    with gunicorn(env, port=port, log_path=run_dir / f"cli-gunicorn-{port}.log") as url:
        yield url


@dataclass
class Cli:
    """Runs portalctl with a config directory of its own and no PORTAL_* from outside."""

    home: Path
    url: str
    env: dict[str, str] = field(default_factory=dict)

    def environ(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("PORTAL", "XDG_"))}
        return {
            **base,
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "COLUMNS": "200",
            **self.env,
            **(extra or {}),
        }

    def __call__(
        self, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [portalctl_path(), *args],
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            env=self.environ(env),
            cwd=self.home,
            timeout=90,
            check=False,
        )

    def ok(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        done = self(*args, **kwargs)
        assert done.returncode == 0, (args, done.returncode, done.stdout, done.stderr)
        return done

    def popen(self, *args: str, env: dict[str, str] | None = None, stream: str = "stdout") -> Lines:
        proc = subprocess.Popen(
            [portalctl_path(), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.environ(env),
            cwd=self.home,
        )
        return Lines(proc, stream=stream)

    def on_terminal(self, *args: str, timeout: float = 60.0) -> tuple[int, str]:
        """Run with stdout and stderr on a pseudo-terminal, as at a shell: (status, screen)."""
        primary, secondary = pty.openpty()
        proc = subprocess.Popen(
            [portalctl_path(), *args],
            stdin=subprocess.DEVNULL,
            stdout=secondary,
            stderr=secondary,
            env=self.environ({"TERM": "xterm-256color"}),
            cwd=self.home,
        )
        os.close(secondary)
        chunks: list[bytes] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        os.close(primary)
        return proc.wait(timeout=10), b"".join(chunks).decode(errors="replace")

    @property
    def config(self) -> Path:
        return self.home / ".config" / "portalctl" / "config.ini"


class Lines:
    """A running portalctl whose stdout (or stderr) lines are read as they come."""

    def __init__(self, proc: subprocess.Popen[str], stream: str = "stdout") -> None:
        self.proc, self.stream = proc, stream
        self.seen: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        pipe = self.proc.stdout if self.stream == "stdout" else self.proc.stderr
        assert pipe is not None
        for line in pipe:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def expect(self, text: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"no line with {text!r}; saw {self.seen}")

    def finish(self, timeout: float = 30.0) -> tuple[int, str]:
        """Its status and the text of the other stream (this one is in `seen`)."""
        other = self.proc.stderr if self.stream == "stdout" else self.proc.stdout
        assert other is not None
        text = other.read()  # to its end before the wait: a full pipe would block the exit
        code = self.proc.wait(timeout=timeout)
        while (line := self._lines.get(timeout=5)) is not None:
            self.seen.append(line)
        return code, text


@pytest.fixture
def cli(web: str, tmp_path: Path) -> Cli:
    home = tmp_path / "home"
    home.mkdir()
    return Cli(home=home, url=web)


class Proxy:
    """A TCP relay on loopback whose connections the test can cut (a dropped network)."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open: list[socket.socket] = []
        self.cuts = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self.open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Every open connection dropped at once, mid-stream."""
        with self._lock:
            conns, self.open = self.open, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        self.cuts += 1

    def close(self) -> None:
        self.listener.close()
        self.cut()


@pytest.fixture
def proxy(web: str) -> Iterator[Proxy]:
    relay = Proxy(int(web.rsplit(":", 1)[1]))
    yield relay
    relay.close()


def user_with_token(
    username: str, *, password: str = "", scope: str = "write", **fields: Any
) -> tuple[Any, str]:
    """A user (with a local password if given) and a token of theirs."""
    from auth.tokens import token_create
    from tests.factories import UserFactory

    user = UserFactory(username=username, **fields)
    if password:
        user.set_password(password)
        user.save()
    _, token = token_create(user=user, name="test", scope=scope, expires_in_days=7)
    return user, token


def have_ssh_stub(bin_dir: Path) -> Path:
    """An `ssh` that prints what it was asked to run (portalctl ssh execs it)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    stub = bin_dir / "ssh"
    stub.write_text('#!/bin/sh\necho "ssh-args: $*"\n')
    stub.chmod(0o755)
    assert shutil.which("ssh", path=str(bin_dir)) == str(stub)
    return stub
