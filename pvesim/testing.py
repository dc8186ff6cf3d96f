"""Run pvesim from tests: in a subprocess or in a thread, and drive its faults.

>>> with SimulatorThread(tmp_path) as sim:                      # doctest: +SKIP
...     api = ProxmoxAPI(sim.host, port=sim.port, user="portal@pve",
...                      token_name="portal", token_value=sim.token_secret,
...                      verify_ssl=str(sim.ca_path))
...     sim.admin.set_node_offline("pve2")
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from pvesim.config import SimConfig, TokenSpec, UserSpec, parse_bridge

DEFAULT_TOKEN_ID = "portal@pve!portal"


class SimAdminError(RuntimeError):
    pass


class SimAdmin:
    """Client for the ``/_sim/`` fault and admin interface (loopback only)."""

    def __init__(self, url: str, ca_path: str | os.PathLike[str]) -> None:
        self.url = url.rstrip("/")
        self._ctx = ssl.create_default_context(cafile=str(ca_path))

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        data = json.dumps(dict(body)).encode() if body is not None else None
        req = urllib.request.Request(  # noqa: S310 - https to our own simulator
            f"{self.url}/_sim/{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"} if data else {},
        )
        try:
            with urllib.request.urlopen(req, context=self._ctx, timeout=30) as resp:  # noqa: S310 - https to our own simulator
                return json.loads(resp.read())["data"]
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise SimAdminError(f"{method} /_sim/{path}: {exc.code} {detail}") from exc

    # -- inspection --
    def health(self) -> bool:
        return bool(self._call("GET", "health")["ok"])

    def state(self) -> dict[str, Any]:
        """Guests, tasks, ACLs, users, locks, leases and faults, for assertions."""
        return dict(self._call("GET", "state"))

    def guests(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "guests"))

    def tasks(self) -> list[dict[str, Any]]:
        return list(self.state()["tasks"])

    # -- faults --
    def reset_faults(self) -> None:
        self._call("POST", "faults/reset", {})

    def set_node_offline(
        self, node: str, offline: bool = True, reason: str = "Connection refused"
    ) -> None:
        """Proxied calls for the node answer ``595 <reason>``; /nodes shows it offline."""
        self._call("POST", "nodes/offline", {"node": node, "offline": offline, "reason": reason})

    def set_quorum(self, ok: bool) -> None:
        """Without quorum, writes fail ``cluster not ready - no quorum?``."""
        self._call("POST", "quorum", {"ok": ok})

    def fail_next_tasks(
        self, task_type: str, count: int = 1, message: str = "command failed"
    ) -> None:
        """The next ``count`` workers of ``task_type`` end with exit status ``message``."""
        self._call(
            "POST", "tasks/fail", {"task_type": task_type, "count": count, "message": message}
        )

    def warn_next_tasks(self, task_type: str, count: int = 1, message: str = "warning") -> None:
        """The next workers succeed with ``WARNINGS: 1`` and a ``WARN: message`` log line."""
        self._call(
            "POST", "tasks/warn", {"task_type": task_type, "count": count, "message": message}
        )

    def fail_next_requests(
        self,
        method: str,
        path_regex: str,
        count: int = 1,
        status: int = 595,
        reason: str = "Connection refused",
    ) -> None:
        """The next ``count`` API calls matching (method or "*", regex on the path
        after /api2/json) answer ``status reason`` before auth; then normal."""
        self._call(
            "POST",
            "requests/fail",
            {
                "method": method,
                "path_regex": path_regex,
                "count": count,
                "status": status,
                "reason": reason,
            },
        )

    def delay_next_requests(
        self, method: str, path_regex: str, seconds: float, count: int = 1
    ) -> None:
        """The next ``count`` matching API calls are held ``seconds``, then answered as
        usual (a slow node). ``state()["faults"]["delayed"]`` counts the calls held."""
        self._call(
            "POST",
            "requests/delay",
            {"method": method, "path_regex": path_regex, "seconds": seconds, "count": count},
        )

    def set_task_seconds(self, task_type: str | None, seconds: float) -> None:
        """Duration of one task type, or of all (``None``)."""
        self._call("POST", "tasks/seconds", {"task_type": task_type, "seconds": seconds})

    def hold_lock(self, vmid: int, lock_name: str = "backup", flock: bool = True) -> None:
        """Set ``lock: lock_name`` in the CT config. With ``flock`` the config
        flock is held too, so PUT config (and start/stop) wait, then fail with
        the flock timeout text."""
        self._call("POST", "locks/hold", {"vmid": vmid, "lock": lock_name, "flock": flock})

    def release_lock(self, vmid: int) -> None:
        self._call("POST", "locks/release", {"vmid": vmid})

    def set_lock_timeout(self, seconds: float) -> None:
        """How long calls wait for a held config flock (Proxmox: 10 s)."""
        self._call("POST", "locks/timeout", {"seconds": seconds})

    def set_latency(self, seconds: float) -> None:
        self._call("POST", "latency", {"seconds": seconds})

    def set_auth_delay(self, seconds: float) -> None:
        self._call("POST", "auth-delay", {"seconds": seconds})

    def revoke_token(self, token_id: str) -> None:
        """The token stops working: 401 ``Authentication failed!``."""
        self._call("POST", "tokens/revoke", {"token_id": token_id})

    def restrict(self, subject: str, role: str | None = None, path: str = "/") -> None:
        """Stop treating a user/token as an admin; optionally grant ``role`` on ``path``."""
        self._call("POST", "restrict", {"subject": subject, "role": role, "path": path})

    # -- clock --
    def set_manual_clock(self, manual: bool = True) -> float:
        return float(self._call("POST", "clock", {"manual": manual})["now"])

    def advance_clock(self, seconds: float) -> float:
        """Move simulated time on; due tasks finish before this returns."""
        return float(self._call("POST", "clock", {"advance": seconds})["now"])

    # -- world --
    def create_foreign_guest(
        self,
        node: str,
        vmid: int,
        type: str = "lxc",
        name: str | None = None,
        *,
        memory: int = 512,
        disk_gb: int = 8,
        status: str = "stopped",
        tags: str | None = None,
    ) -> dict[str, Any]:
        """A guest the portal did not create (e.g. made in the Proxmox UI)."""
        body: dict[str, Any] = {
            "node": node,
            "vmid": vmid,
            "type": type,
            "memory": memory,
            "disk_gb": disk_gb,
            "status": status,
        }
        if name is not None:
            body["name"] = name
        if tags is not None:
            body["tags"] = tags
        return dict(self._call("POST", "guests", body))

    def create_foreign_guests(self, guests: Iterable[Mapping[str, Any]]) -> list[int]:
        """Many guests in one call: each a dict of create_foreign_guest's keywords
        (node and vmid required; disk_gb rather than disk)."""
        return list(
            self._call("POST", "guests/bulk", {"guests": [dict(g) for g in guests]})["created"]
        )

    def remove_guests(self, vmids: Iterable[int]) -> list[int]:
        """Forget guests (and their volumes) at once, as if destroyed: a test's clean-up."""
        return list(self._call("POST", "guests/remove", {"vmids": list(vmids)})["removed"])

    def set_guest_usage(
        self,
        vmid: int,
        values: Mapping[str, float] | None = None,
        rates: Mapping[str, float] | None = None,
    ) -> dict[str, Any]:
        """Fix a guest's figures from now on (while it runs): `values` for gauges (cpu as
        a fraction of its cores, mem, disk, swap, memhost, pressure*) and for counters'
        values now (netin, netout, diskread, diskwrite); `rates` in bytes/s move counters
        on from there (a counter without a rate stands still). The RRD follows."""
        body = {"vmid": vmid, "values": dict(values or {}), "rates": dict(rates or {})}
        return dict(self._call("POST", "guests/usage", body))

    def clear_guest_usage(self, vmid: int) -> None:
        self._call("POST", "guests/usage", {"vmid": vmid, "clear": True})

    # -- request counts --
    def request_counts(self) -> dict[str, int]:
        """API calls answered since the last reset, by "METHOD /path" (no /api2/json)."""
        return {str(k): int(v) for k, v in self._call("GET", "requests/counts").items()}

    def reset_request_counts(self) -> None:
        self._call("POST", "requests/counts/reset")

    def set_guest_status(self, vmid: int, status: str) -> None:
        """Force a guest running/stopped, e.g. to simulate a crash."""
        self._call("POST", "guests/status", {"vmid": vmid, "status": status})

    def set_directory_users(
        self, realm: str, uids: Iterable[str], groups: Mapping[str, Iterable[str]] | None = None
    ) -> None:
        """What the LDAP directory of ``realm`` returns on the next sync."""
        self._call(
            "POST",
            "directory",
            {
                "realm": realm,
                "users": list(uids),
                "groups": {k: list(v) for k, v in (groups or {}).items()},
            },
        )

    def set_storage_size(self, node: str, storage: str, size: int) -> None:
        self._call("POST", "storage", {"node": node, "storage": storage, "size": size})

    def create_pool(self, pool: str) -> None:
        self._call("POST", "pools", {"pool": pool})

    def set_template_packages(self, template: str, packages: Iterable[str]) -> None:
        """The packages `template` (its file name, or a volid) holds beyond the base
        system: a CT created from it afterwards starts with them installed, as the apt
        stand-in installs them (guest emulation). An empty list forgets them."""
        self._call("POST", "templates/packages", {"template": template, "packages": list(packages)})


def _child_env() -> dict[str, str]:
    """Make ``-m pvesim`` importable whatever the caller's working directory."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def _token_specs(tokens: Mapping[str, str]) -> list[TokenSpec]:
    out = []
    for tokenid, secret in tokens.items():
        role = None
        if ":" in secret:
            secret, role = secret.split(":", 1)
        out.append(TokenSpec(tokenid, secret, role))
    return out


class _SimBase:
    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        *,
        nodes: Iterable[str] = ("pve1", "pve2"),
        tokens: Mapping[str, str] | None = None,
        users: Mapping[str, str] | None = None,
        task_seconds: float = 0.2,
        dhcp_hosts: str | os.PathLike[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        auth_delay: float = 0.0,
        lock_timeout: float = 10.0,
        guest_emulation: bool = False,
        bridges: Iterable[str] = (),
        guest_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.nodes = tuple(nodes)
        self.tokens = dict(tokens) if tokens is not None else {DEFAULT_TOKEN_ID: str(uuid.uuid4())}
        self.users = dict(users or {})
        self.task_seconds = task_seconds
        self.dhcp_hosts = Path(dhcp_hosts) if dhcp_hosts else None
        self.host = host
        self.port = port
        self.auth_delay = auth_delay
        self.lock_timeout = lock_timeout
        self.guest_emulation = guest_emulation
        self.bridges = list(bridges)  # "NAME=FIRST-LAST/PREFIX[,GW]", as --bridge
        self.guest_dir = Path(guest_dir) if guest_dir else None  # default STATE/guests
        self.url = ""

    @property
    def ca_path(self) -> Path:
        return self.state_dir / "tls" / "ca.pem"

    @property
    def token_id(self) -> str:
        """The first token, in full ``user@realm!name`` form."""
        return next(iter(self.tokens))

    @property
    def token_secret(self) -> str:
        return self.tokens[self.token_id].split(":", 1)[0]

    @property
    def token_user(self) -> str:
        return self.token_id.split("!", 1)[0]

    @property
    def token_name(self) -> str:
        return self.token_id.split("!", 1)[1]

    @property
    def admin(self) -> SimAdmin:
        return SimAdmin(self.url, self.ca_path)

    def proxmox(self, **kwargs: Any) -> Any:
        """A proxmoxer client using the first token and the generated CA."""
        from proxmoxer import ProxmoxAPI

        return ProxmoxAPI(
            self.host,
            port=self.port,
            user=self.token_user,
            token_name=self.token_name,
            token_value=self.token_secret,
            verify_ssl=str(self.ca_path),
            **kwargs,
        )


class SimulatorProcess(_SimBase):
    """``python -m pvesim`` in a subprocess; stopped with SIGTERM by PID."""

    def __init__(
        self, state_dir: str | os.PathLike[str], *, extra_args: Iterable[str] = (), **kwargs: Any
    ) -> None:
        super().__init__(state_dir, **kwargs)
        self.extra_args = list(extra_args)
        self.proc: subprocess.Popen[str] | None = None
        self.log_path = self.state_dir / "pvesim.log"

    def command(self) -> list[str]:
        cmd = [
            sys.executable,
            "-m",
            "pvesim",
            "--listen",
            f"{self.host}:{self.port}",
            "--nodes",
            ",".join(self.nodes),
            "--state-dir",
            str(self.state_dir),
            "--task-seconds",
            str(self.task_seconds),
            "--auth-delay",
            str(self.auth_delay),
            "--lock-timeout",
            str(self.lock_timeout),
        ]
        for tokenid, secret in self.tokens.items():
            cmd += ["--token", f"{tokenid}={secret}"]
        for userid, password in self.users.items():
            cmd += ["--user", f"{userid}:{password}"]
        if self.dhcp_hosts:
            cmd += ["--dhcp-hosts", str(self.dhcp_hosts)]
        for bridge in self.bridges:
            cmd += ["--bridge", bridge]
        if self.guest_emulation:
            cmd.append("--guest-emulation")
        if self.guest_dir:
            cmd += ["--guest-dir", str(self.guest_dir)]
        return cmd + self.extra_args

    def start(self, timeout: float = 15) -> SimulatorProcess:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child for its lifetime
        try:
            self.proc = subprocess.Popen(
                self.command(),
                stdout=subprocess.PIPE,
                stderr=log,
                stdin=subprocess.DEVNULL,
                text=True,
                env=_child_env(),
            )
        finally:
            log.close()
        stdout = self.proc.stdout
        assert stdout is not None
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        text = line[0].strip() if line else ""
        prefix = "pvesim ready on "
        if not text.startswith(prefix):
            self.stop()
            raise RuntimeError(f"pvesim did not start: {text!r}; see {self.log_path}")
        self.url = text[len(prefix) :]
        self.port = int(self.url.rsplit(":", 1)[1])
        return self

    def stop(self, timeout: float = 10) -> int | None:
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout)
        if proc.stdout is not None:
            proc.stdout.close()
        return proc.returncode

    def __enter__(self) -> SimulatorProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class SimulatorThread(_SimBase):
    """The simulator in this process (fast contract tests); ``.state`` is live."""

    def __init__(self, state_dir: str | os.PathLike[str], **kwargs: Any) -> None:
        super().__init__(state_dir, **kwargs)
        self.server: Any = None

    def config(self) -> SimConfig:
        return SimConfig(
            state_dir=self.state_dir,
            nodes=self.nodes,
            host=self.host,
            port=self.port,
            tokens=_token_specs(self.tokens),
            users=[UserSpec(u, p) for u, p in self.users.items()],
            task_seconds=self.task_seconds,
            dhcp_hosts=self.dhcp_hosts,
            auth_delay=self.auth_delay,
            lock_timeout=self.lock_timeout,
            bridges=[parse_bridge(b) for b in self.bridges],
            guest_emulation=self.guest_emulation,
            guest_dir=self.guest_dir,
        )

    def start(self, timeout: float = 15) -> SimulatorThread:
        from pvesim.server import SimServer

        self.server = SimServer(self.config())
        self.server.start()
        self.url = self.server.url
        self.port = self.server.port
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.admin.health():
                    break
            except OSError:
                time.sleep(0.02)
        return self

    @property
    def state(self) -> Any:
        """The live :class:`pvesim.state.SimState` (hold ``state.lock`` to mutate)."""
        return self.server.state

    def stop(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.stop()

    def __enter__(self) -> SimulatorThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
