"""Running a deploy's steps in a container over SSH (LaunchPad, issue #15).

The system's OpenSSH client, with the portal's deploy key, as `root` at the container's
address: no password, no agent, no forwarding, a host key learnt on first contact and
held to after that (one known-hosts file per container). A step's standard input carries
what must not be on a command line (the env, a unit file, the source archive); its
output comes back line by line as it is written, for the job log.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import selectors
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from django.conf import settings

from portal.errors import ErrorCode, UpstreamError, UpstreamUnavailable
from portal.procs import find_binary

from .deploy_key import deploy_key_path

LINE_MAX = 2000  # a longer output line is cut in the log
CHUNK = 64 * 1024
PORT_POLL = 0.05  # seconds between looks at a booting container's SSH port
TICK = 1.0  # seconds between on_tick calls while a command is quiet
# A shared connection's master stays this long after its last session (a quiet spell,
# such as a long health check, only costs a new handshake).
CONTROL_PERSIST = 60


@dataclass(frozen=True)
class Remote:
    address: str
    known_hosts: Path
    user: str = "root"
    port: int = 22
    connect_timeout: float = 5.0
    control_path: Path | None = None  # set by shared(): sessions share one connection

    @classmethod
    def for_container(cls, address: str, container_id: int) -> Remote:
        directory = Path(settings.DEPLOY_KEY_DIR) / "known_hosts"
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        return cls(address=address, known_hosts=directory / f"container-{container_id}")

    def argv(self, command: str | None) -> list[str]:
        """ssh's arguments for `command`; None: open the shared connection only (-f -N:
        into the background once logged in, no session)."""
        ssh = find_binary("ssh")
        if ssh is None:
            raise UpstreamError("the worker has no ssh client (install openssh-client)")
        mux = []
        if self.control_path is not None:
            mux = [
                "-o", "ControlMaster=auto",
                "-o", f"ControlPath={self.control_path}",
                "-o", f"ControlPersist={CONTROL_PERSIST}",
            ]  # fmt: skip
        return [
            ssh,
            *mux,
            "-i", str(deploy_key_path()),
            "-p", str(self.port),
            "-o", "BatchMode=yes",
            "-o", "IdentitiesOnly=yes",
            "-o", "StrictHostKeyChecking=accept-new",
            "-o", f"UserKnownHostsFile={self.known_hosts}",
            "-o", f"ConnectTimeout={int(self.connect_timeout)}",
            "-o", "ForwardAgent=no",
            "-o", "ClearAllForwardings=yes",
            "-o", "LogLevel=ERROR",
            f"{self.user}@{self.address}",
            *(["--", command] if command is not None else ["-f", "-N"]),
        ]  # fmt: skip

    def run(
        self,
        command: str,
        *,
        stdin: bytes | Path = b"",
        on_line: Callable[[str], None] = lambda line: None,
        on_tick: Callable[[], None] = lambda: None,
        timeout: float = 600.0,
    ) -> int:
        """Run `command` (a shell line) and return its exit status; each line of its output
        (stdout and stderr together) goes to `on_line` as it comes, and `on_tick` is called
        at least every TICK seconds while it runs (a job's heartbeat). `stdin` is bytes, or
        a file sent in chunks. 255 is ssh's own: the container could not be reached or
        refused the key."""
        proc = subprocess.Popen(
            self.argv(command),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        pipe_in, pipe_out = proc.stdin, proc.stdout
        if pipe_in is None or pipe_out is None:  # pragma: no cover - both are PIPE above
            raise RuntimeError("ssh started without its pipes")
        writer = threading.Thread(target=_feed, args=(pipe_in, stdin), daemon=True)
        writer.start()
        deadline = time.monotonic() + timeout
        try:
            _read_lines(pipe_out, on_line, on_tick, deadline)
            code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            code = -1
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            writer.join(timeout=5)
            pipe_out.close()
        if code < 0:
            raise UpstreamUnavailable(
                f"the command in {self.address} did not end within {timeout:.0f} s",
                code=ErrorCode.GATEWAY_TIMEOUT,
            )
        return code

    def wait_ready(
        self,
        *,
        timeout: float = 120.0,
        poll: float = 1.0,
        on_tick: Callable[[], None] = lambda: None,
    ) -> None:
        """Until the container answers over SSH (its sshd starts after it boots).

        While nothing listens on its port, asks again every PORT_POLL seconds: a TCP
        connect costs next to nothing, and a container just started answers within a
        second, so coarser steps were most of the wait. Once the port is open, logs in;
        a login that fails is tried again after 0.1 s, doubling up to `poll`."""
        deadline = time.monotonic() + timeout
        pause = min(0.1, poll)
        while True:
            if not self._port_open():
                delay = PORT_POLL
            elif self._answers(on_tick) == 0:
                return
            else:
                delay, pause = pause, min(pause * 2, poll)
            on_tick()
            if time.monotonic() > deadline:
                raise UpstreamUnavailable(
                    f"{self.address} did not answer over SSH within {timeout:.0f} s"
                )
            time.sleep(delay)

    def _port_open(self) -> bool:
        try:
            with socket.create_connection(
                (self.address, self.port), timeout=min(self.connect_timeout, 1.0)
            ):
                return True
        except OSError:
            return False

    def _answers(self, on_tick: Callable[[], None]) -> int:
        if self.control_path is None:
            return self.run("true", timeout=self.connect_timeout + 5, on_tick=on_tick)
        # A shared connection: logging in is the check, and no session is needed for it.
        try:
            # No pipes: the master stays in the background and would hold them open.
            return subprocess.run(
                self.argv(None),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=self.connect_timeout + 5,
                check=False,
            ).returncode
        except subprocess.TimeoutExpired:
            return 255


@contextlib.contextmanager
def shared(remote: Remote) -> Iterator[Remote]:
    """`remote` whose sessions share one SSH connection (OpenSSH's ControlMaster).

    Each session over a connection of its own pays the handshake and login again; a deploy
    runs six or more, one after another. The first session opens the connection (and
    stays its master in the background), the next ones are channels on it; one that finds
    no master opens a connection of its own, as before. Its socket is in a private
    directory of this worker's (0700, short: a socket path is at most ~100 bytes), and the
    master is told to exit when the block ends.
    """
    directory = Path(tempfile.mkdtemp(prefix="portal-ssh-"))
    mux = dataclasses.replace(remote, control_path=directory / "c")
    try:
        yield mux
    finally:
        if (directory / "c").exists():
            ssh = find_binary("ssh") or "ssh"
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run(
                    [ssh, "-o", f"ControlPath={directory / 'c'}", "-O", "exit", "-p",
                     str(remote.port), f"{remote.user}@{remote.address}"],
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    timeout=5,
                    check=False,
                )  # fmt: skip
        shutil.rmtree(directory, ignore_errors=True)


def _feed(pipe: IO[bytes], stdin: bytes | Path) -> None:
    try:
        if isinstance(stdin, Path):
            with stdin.open("rb") as source:
                while chunk := source.read(CHUNK):
                    pipe.write(chunk)
        else:
            pipe.write(stdin)
        pipe.close()
    except OSError:
        pass  # the command ended without reading it all


def _read_lines(
    pipe: IO[bytes],
    on_line: Callable[[str], None],
    on_tick: Callable[[], None],
    deadline: float,
) -> None:
    """Hand each output line to on_line as it comes, ticking while the command is quiet."""
    fd = pipe.fileno()
    pending = b""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            ready = selector.select(timeout=TICK)
            on_tick()
            if not ready:
                continue
            chunk = os.read(fd, CHUNK)
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\n")
            for raw in lines:
                on_line(raw.decode(errors="replace").rstrip("\r")[:LINE_MAX])
            if len(pending) > LINE_MAX * 4:  # a very long line without an end: cut it
                on_line(pending.decode(errors="replace")[:LINE_MAX])
                pending = b""
        else:
            raise subprocess.TimeoutExpired("ssh", 0)
    if pending:
        on_line(pending.decode(errors="replace").rstrip("\r")[:LINE_MAX])
