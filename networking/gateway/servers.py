"""The server processes on the gateway host: the nginx for HTTP, the stream shards' nginx
(the TCP/UDP port mappings, port mod GATEWAY_STREAM_SHARDS each) and dnsmasq.

Each is validated with its own binary (`nginx -t`, `dnsmasq --test`), reloaded by SIGHUP
to the PID in its pid file (or by the configured command), started daemonised and
stopped by that PID.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shlex
import signal
import socket
import subprocess
import urllib.request
from pathlib import Path

from django.conf import settings

from portal.errors import ApplyFailed, ErrorCode
from portal.procs import find_binary, pid_alive, stop_pid, wait_until

from ..render import GatewayOptions
from .paths import GatewayPaths


def _raise_nofile() -> None:
    # nginx opens one socket per mapping even for `-t`; let it (a child) use the hard
    # limit. Raised in this process, once, so that children start without a preexec hook
    # (which would force a slow fork of the whole worker).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _run(argv: list[str], *, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    _raise_nofile()
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def nginx_test(conf: Path, prefix: Path) -> tuple[bool, str]:
    binary = find_binary(settings.GATEWAY_NGINX_BIN)
    if not binary:
        raise ApplyFailed(
            code=ErrorCode.VALIDATE,
            message=f"nginx ({settings.GATEWAY_NGINX_BIN}) is not installed on "
            "the gateway host; install nginx and libnginx-mod-stream",
        )
    out = _run([binary, "-t", "-q", "-c", str(conf), "-p", f"{prefix}/"])
    return out.returncode == 0, (out.stderr + out.stdout).strip()


def dnsmasq_test(conf: Path) -> tuple[bool, str]:
    binary = find_binary(settings.GATEWAY_DNSMASQ_BIN)
    if not binary:
        raise ApplyFailed(
            code=ErrorCode.VALIDATE,
            message=f"dnsmasq ({settings.GATEWAY_DNSMASQ_BIN}) is not "
            "installed on the gateway host; install dnsmasq-base",
        )
    out = _run([binary, "--test", f"--conf-file={conf}"])
    return out.returncode == 0, (out.stderr + out.stdout).strip()


def read_pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, IndexError, ValueError):
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(stat.parent.name))
        return found


def worker_retired(pid: int) -> bool:
    """An old nginx worker has stopped accepting: gone, or (after QUIT) shutting down."""
    try:
        return b"shutting down" in Path(f"/proc/{pid}/cmdline").read_bytes() or not pid_alive(pid)
    except OSError:
        return True


def _http_get(url: str, timeout: float = 1.0) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - our own loopback URL
            return str(resp.read().decode().strip())
    except OSError:
        return None


def _running(pid: int | None, label: str, pid_file: Path) -> int:
    """The server's PID; SERVER_DOWN, naming it and its pid file, if it has none."""
    if pid is None:
        raise ApplyFailed(
            code=ErrorCode.SERVER_DOWN,
            message=f"{label} is not running on the gateway host (no live PID in {pid_file})",
        )
    return pid


def _stream_read(listen: str, timeout: float = 1.0) -> str | None:
    """What a stream shard's status server sends (its revision) before it closes."""
    host, port = _loopback(listen)
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as s:
            chunks = []
            while chunk := s.recv(256):
                chunks.append(chunk)
    except OSError:
        return None
    return b"".join(chunks).decode(errors="replace").strip() or None


def _loopback(listen: str) -> tuple[str, str]:
    host, _, port = listen.rpartition(":")
    if host in ("", "0.0.0.0", "*"):  # noqa: S104 - parsing a listen address, not binding
        host = "127.0.0.1"
    elif host == "[::]":
        host = "[::1]"
    return host, port


def status_url(listen: str) -> str:
    host, port = _loopback(listen)
    return f"http://{host}:{port}/revision"


class Nginx:
    """One of the gateway's nginx: the HTTP one (`shard` None) or a stream shard.

    `name` is the key of its revision in `Rendered.revisions` ("nginx", "stream-<i>").
    Only the HTTP one honours GATEWAY_NGINX_RELOAD_COMMAND and GATEWAY_NGINX_PID_FILE; a
    shard is signalled by the PID in run/stream-<i>.pid.
    """

    def __init__(self, paths: GatewayPaths, options: GatewayOptions, shard: int | None = None):
        self.paths, self.options, self.shard = paths, options, shard

    @classmethod
    def every(cls, paths: GatewayPaths, options: GatewayOptions) -> list[Nginx]:
        """The HTTP nginx and each stream shard."""
        shards = range(options.stream_shards)
        return [cls(paths, options), *(cls(paths, options, i) for i in shards)]

    @property
    def name(self) -> str:
        return "nginx" if self.shard is None else f"stream-{self.shard}"

    @property
    def label(self) -> str:
        return "nginx" if self.shard is None else f"nginx (stream shard {self.shard})"

    @property
    def conf(self) -> Path:
        return self.paths.nginx_conf if self.shard is None else self.paths.stream_conf(self.shard)

    @property
    def pid_file(self) -> Path:
        if self.shard is None:
            return self.paths.nginx_pid_file
        return self.paths.stream_pid_file(self.shard)

    @property
    def error_log(self) -> Path:
        if self.shard is None:
            return self.paths.nginx_error_log
        return self.paths.stream_error_log(self.shard)

    def pid(self) -> int | None:
        return read_pid(self.pid_file)

    def served(self) -> str | None:
        if self.shard is None:
            return _http_get(status_url(self.options.status_listen))
        return _stream_read(self.options.shard_status_listen(self.shard))

    def workers(self) -> list[int]:
        pid = self.pid()
        return _children(pid) if pid else []

    def reload(self) -> None:
        if settings.GATEWAY_NGINX_RELOAD_COMMAND and self.shard is None:
            out = _run(shlex.split(settings.GATEWAY_NGINX_RELOAD_COMMAND))
            if out.returncode:
                raise ApplyFailed(
                    code=ErrorCode.RELOAD,
                    message=f"the nginx reload command failed: {out.stderr.strip()}",
                )
            return
        os.kill(self.require_running(), signal.SIGHUP)

    def require_running(self) -> int:
        return _running(self.pid(), self.label, self.pid_file)

    def start(self) -> None:
        binary = find_binary(settings.GATEWAY_NGINX_BIN)
        if not binary:
            raise FileNotFoundError("nginx is not installed")
        out = _run([binary, "-c", str(self.conf), "-p", f"{self.paths.nginx_prefix}/"])
        if out.returncode:
            raise RuntimeError(f"{self.label} did not start: {out.stderr.strip()}")
        wait_until(lambda: self.served() is not None, timeout=10, what=self.label)

    def stop(self) -> None:
        pid = self.pid()
        if pid:
            stop_pid(pid, sig=signal.SIGQUIT, timeout=10)


class Dnsmasq:
    name = "dnsmasq"

    def __init__(self, paths: GatewayPaths, options: GatewayOptions) -> None:
        self.paths, self.options = paths, options

    def pid(self) -> int | None:
        return read_pid(self.paths.dnsmasq_pid_file)

    def reload(self) -> None:
        if settings.GATEWAY_DNSMASQ_RELOAD_COMMAND:
            out = _run(shlex.split(settings.GATEWAY_DNSMASQ_RELOAD_COMMAND))
            if out.returncode:
                raise ApplyFailed(
                    code=ErrorCode.RELOAD,
                    message=f"the dnsmasq reload command failed: {out.stderr.strip()}",
                )
            return
        os.kill(self.require_running(), signal.SIGHUP)

    def require_running(self) -> int:
        return _running(self.pid(), self.name, self.paths.dnsmasq_pid_file)

    def restart(self) -> None:
        if settings.GATEWAY_DNSMASQ_RESTART_COMMAND:
            out = _run(shlex.split(settings.GATEWAY_DNSMASQ_RESTART_COMMAND))
            if out.returncode:
                raise ApplyFailed(
                    code=ErrorCode.RELOAD,
                    message=f"the dnsmasq restart command failed: {out.stderr.strip()}",
                )
            return
        self.stop()
        self.start()

    def start(self) -> None:
        binary = find_binary(settings.GATEWAY_DNSMASQ_BIN)
        if not binary:
            raise FileNotFoundError("dnsmasq is not installed")
        # dnsmasq daemonises and writes its pid file; it is stopped by that PID.
        out = _run([binary, f"--conf-file={self.paths.dnsmasq_conf}"])
        if out.returncode:
            raise ApplyFailed(
                code=ErrorCode.RELOAD, message=f"dnsmasq did not start: {out.stderr.strip()}"
            )
        wait_until(lambda: self.pid() is not None, timeout=10, what="dnsmasq")

    def stop(self) -> None:
        pid = self.pid()  # read first: dnsmasq deletes its pid file as it exits
        if pid:
            stop_pid(pid, timeout=10)
