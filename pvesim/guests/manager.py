"""Guest emulation in the simulator: a running CT on loopback gets a real sshd.

:class:`GuestEmulator` compares what should run (every running CT with an IPv4
address on loopback) with what runs (one :mod:`pvesim.guests.init` process per CT) on
every state change, in its own thread, outside the state lock. Each CT has:

* ``STATE/guests/VMID/``: its directory, standing for its root filesystem, owned by the
  CT's user (``nobody`` unless ``--guest-user`` says otherwise);
* ``STATE/guest-sshd/VMID/`` (root only, 0700): host key, ``sshd_config``, the init's
  spec, ``sshd.pid``, ``sshd.log`` and ``init.log``.

Nothing here is fatal to the CT: when sshd cannot start, the CT still runs and the
simulator logs why (as Proxmox would, whose business the guest's services are not).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pvesim import guestconf
from pvesim.api.lxc.shared import static_ips
from pvesim.guests import sshd
from pvesim.schema import FormatError

if TYPE_CHECKING:
    from pvesim.state import Guest, SimState

log = logging.getLogger("pvesim.guests")

INIT_STOP_TIMEOUT = 30.0  # the init's own grace is 5 s; this covers a slow machine
READY_TIMEOUT = 90.0  # the init's boot may take 60 s, sshd 10 more
PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent


@dataclass(frozen=True)
class Want:
    """One running CT as guest emulation sees it; a change (a restart, a new address)
    restarts its init."""

    vmid: int
    started_at: float | None
    ip: str
    hostname: str = field(compare=False)
    keys: str | None = field(compare=False)
    packages: tuple[str, ...] = field(default=(), compare=False)


@dataclass
class Running:
    want: Want
    proc: subprocess.Popen[bytes]


def loopback_ipv4(state: SimState, guest: Guest, taken: set[str]) -> str | None:
    """The CT's first IPv4 address (DHCP or static) if it is on loopback."""
    for key in sorted((k for k in guest.conf if re.fullmatch(r"net\d+", k)), key=lambda k: k[3:]):
        try:
            net = guestconf.parse_net(str(guest.conf[key]))
        except FormatError:
            continue
        ip = net.get("ip")
        if ip == "dhcp" and net.get("hwaddr"):
            addr = state.dhcp.address_for(
                str(net["hwaddr"]), net.get("bridge"), state.leases, taken
            )[0]
        elif ip and "/" in str(ip):
            addr = str(ip).split("/", 1)[0]
        else:
            continue
        try:
            if ipaddress.IPv4Address(addr).is_loopback:
                return addr
        except ValueError:
            continue
    return None


class GuestEmulator:
    def __init__(self, state: SimState, user: str = "nobody", root: Path | None = None) -> None:
        self.state = state
        # The CTs' directories: under the state directory unless told (--guest-dir), e.g.
        # when that lies below a home directory the CTs' user may not pass.
        self.root = root or state.state_dir / "guests"
        self.private_root = state.state_dir / "guest-sshd"
        self.account = sshd.resolve_account(user)
        self.python = sshd.host_python()
        self._lock = threading.Lock()
        self._running: dict[int, Running] = {}
        self._tried: dict[int, Want] = {}  # the last start per CT: not retried until it changes
        self._identity: dict[int, float] = {}  # vmid -> created_at of the CT a directory is for
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lifeline_r, self._lifeline_w = os.pipe()
        self._prepare()

    # -- setup ---------------------------------------------------------------------------
    def _prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.private_root.mkdir(mode=0o700, exist_ok=True)
        self.private_root.chmod(0o700)
        if self.account.drop:
            # The CT's user walks through the state directory (it may not list it), when
            # the CTs' directories are there.
            walk = [self.root]
            if self.root.parent == self.state.state_dir:
                walk.insert(0, self.state.state_dir)
            for directory in walk:
                mode = directory.stat().st_mode & 0o7777
                directory.chmod(mode | 0o111 if directory == self.root else mode | 0o001)
        for entry in self.private_root.iterdir():
            if entry.name.isdigit():
                try:
                    self._identity[int(entry.name)] = float((entry / "created").read_text())
                except (OSError, ValueError):
                    self._identity[int(entry.name)] = -1.0
        sshd.ensure_privsep_dir()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="pvesim-guests", daemon=True)
        self._thread.start()
        self.wake()

    def wake(self) -> None:
        self._wake.set()

    def shutdown(self) -> None:
        """Stop every CT's processes (the simulator is exiting)."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=INIT_STOP_TIMEOUT + 5)
        with self._lock:
            runs = list(self._running.items())
            self._running.clear()
        os.close(self._lifeline_w)  # every init sees its lifeline end and stops at once
        for vmid, run in runs:
            self._wait_init(vmid, run)
        os.close(self._lifeline_r)

    # -- what the power workers ask ----------------------------------------------------
    def request_stop(self, vmid: int) -> None:
        """Begin stopping a CT's processes (SIGTERM to its init); does not wait."""
        with self._lock:
            run = self._running.get(vmid)
        if run is not None and run.proc.poll() is None:
            run.proc.send_signal(signal.SIGTERM)

    def alive(self, vmid: int) -> bool:
        with self._lock:
            run = self._running.get(vmid)
        return run is not None and run.proc.poll() is None

    def ct_dir(self, vmid: int) -> Path:
        return self.root / str(vmid)

    # -- the loop ------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.reconcile()
            except Exception:
                log.exception("guest emulation failed")

    def _desired(self) -> tuple[dict[int, Want], dict[int, float]]:
        """(the CTs that should have an sshd, created_at of every CT) from the state."""
        state = self.state
        want: dict[int, Want] = {}
        with state.lock:
            existing = {g.vmid: g.created_at for g in state.guests.values() if g.type == "lxc"}
            running = [
                g for g in state.guests.values() if g.type == "lxc" and g.status == "running"
            ]
            taken = static_ips(state) if running else set()
            for guest in running:
                ip = loopback_ipv4(state, guest, taken)
                if ip is not None:
                    hostname = str(guest.conf.get("hostname") or f"CT{guest.vmid}")
                    want[guest.vmid] = Want(
                        guest.vmid, guest.started_at, ip, hostname, guest.ssh_keys, guest.packages
                    )
        return want, existing

    def reconcile(self) -> None:
        want, existing = self._desired()
        with self._lock:
            current = dict(self._running)
        for vmid, run in current.items():
            if want.get(vmid) != run.want or run.proc.poll() is not None:
                self._stop_init(vmid)
        for vmid in list(self._tried):
            if vmid not in want:
                del self._tried[vmid]
        for vmid, created in list(self._identity.items()):
            if existing.get(vmid) != created:
                self._remove_dirs(vmid)
        for vmid, w in sorted(want.items()):
            if self._stop.is_set():
                return
            with self._lock:
                running = vmid in self._running
            if not running and self._tried.get(vmid) != w:
                self._tried[vmid] = w
                self._start_init(w, existing[vmid])

    # -- one CT --------------------------------------------------------------------------
    def _start_init(self, w: Want, created_at: float) -> None:
        where = f"CT {w.vmid} ({w.ip})"
        if not os.access(sshd.SSHD, os.X_OK):
            log.warning(
                "%s: no SSH server: %s is missing; the CT runs without one", where, sshd.SSHD
            )
            return
        try:
            spec = self._prepare_ct(w, created_at)
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            log.warning("%s runs without an SSH server: %s", where, exc)
            return
        proc = subprocess.Popen(
            [sys.executable, "-m", "pvesim.guests.init", str(spec)],
            pass_fds=(self._lifeline_r,),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            env=_init_env(),
            start_new_session=True,
        )
        with self._lock:
            self._running[w.vmid] = Running(w, proc)
        threading.Thread(
            target=_report, args=(where, w.ip, proc), name=f"pvesim-ct{w.vmid}", daemon=True
        ).start()

    def _prepare_ct(self, w: Want, created_at: float) -> Path:
        """The CT's directory and its sshd's files; returns the init's spec file."""
        ct_dir = self.ct_dir(w.vmid)
        private = self.private_root / str(w.vmid)
        if self._identity.get(w.vmid, created_at) != created_at:
            self._remove_dirs(w.vmid)
        private.mkdir(mode=0o700, exist_ok=True)
        fresh = not ct_dir.exists()
        if fresh:
            ct_dir.mkdir(mode=0o755)
            if self.account.drop:
                os.chown(ct_dir, self.account.uid, self.account.gid)
        (private / "created").write_text(repr(created_at))
        self._identity[w.vmid] = created_at
        if self.account.drop:
            blocked = sshd.unreachable(ct_dir, self.account)
            if blocked:
                raise ValueError(f"the CT's directory is out of its user's reach: {blocked}")
        sshd.ensure_host_key(private / "ssh_host_ed25519_key", f"root@{w.hostname}")
        (private / "sshd_config").write_text(
            sshd.render_config(
                ip=w.ip, private=private, ct_dir=ct_dir, account=self.account, vmid=w.vmid
            )
        )
        spec = private / "init.json"
        fd = os.open(spec, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(self._spec(w, ct_dir, private, fresh), fh)
        return spec

    def _spec(self, w: Want, ct_dir: Path, private: Path, fresh: bool) -> dict[str, Any]:
        return {
            "vmid": w.vmid,
            "ip": w.ip,
            "hostname": w.hostname,
            "keys": w.keys if fresh else None,  # authorized_keys is the CT's own from then on
            "packages": list(w.packages) if fresh else [],  # the template's, once
            "ct_dir": str(ct_dir),
            "private": str(private),
            "uid": self.account.uid,
            "gid": self.account.gid,
            "sshd": sshd.SSHD,
            "python": self.python,
            "lifeline_fd": self._lifeline_r,
        }

    def _stop_init(self, vmid: int) -> None:
        with self._lock:
            run = self._running.pop(vmid, None)
        if run is not None:
            if run.proc.poll() is None:
                run.proc.send_signal(signal.SIGTERM)
            self._wait_init(vmid, run)

    def _wait_init(self, vmid: int, run: Running) -> None:
        try:
            run.proc.wait(INIT_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            log.error("CT %s: its init did not stop in %.0f s; killed", vmid, INIT_STOP_TIMEOUT)
            run.proc.kill()
            run.proc.wait()
        if run.proc.stdout is not None:
            run.proc.stdout.close()

    def _remove_dirs(self, vmid: int) -> None:
        """A destroyed CT's directory and sshd files go with it (its volume did)."""
        self._stop_init(vmid)
        for path in (self.ct_dir(vmid), self.private_root / str(vmid)):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
        self._identity.pop(vmid, None)


def _report(where: str, ip: str, proc: subprocess.Popen[bytes]) -> None:
    """Log the init's one status line: sshd is up, or why the CT runs without it."""
    assert proc.stdout is not None
    try:
        ready, _, _ = select.select([proc.stdout], [], [], READY_TIMEOUT)
        status = proc.stdout.readline().decode(errors="replace").strip() if ready else ""
    except (OSError, ValueError):  # the CT was stopped meanwhile
        return
    if status.startswith("ready"):
        log.info("%s: sshd listening on %s:22 (pid %s)", where, ip, status.split()[-1])
    elif status:
        log.warning("%s runs without an SSH server: %s", where, status.removeprefix("failed "))
    elif proc.poll() is None:
        log.warning("%s: sshd not up after %.0f s (a slow boot?)", where, READY_TIMEOUT)
    else:
        log.warning("%s runs without an SSH server: its init exited (%s)", where, proc.returncode)


def _init_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PACKAGE_ROOT), env.get("PYTHONPATH", "")) if p
    )
    return env
