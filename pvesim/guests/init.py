"""One running CT's init: ``python -m pvesim.guests.init SPEC.json``.

Started by :class:`pvesim.guests.manager.GuestEmulator` (as root when the simulator is
root). It is a child subreaper, so every process the CT starts (sessions, units that
detach) stays below it. It boots the CT as the CT's user (the stand-ins, the enabled
units), starts sshd in the foreground, and reports one line on stdout: ``ready PID`` or
``failed REASON``. On SIGTERM, or when the simulator goes away (its lifeline pipe ends),
it stops the units by the PIDs in their PID files, then sshd, then whatever is left below
it: SIGTERM, a grace period, SIGKILL. It exits only when nothing of the CT runs.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pvesim.guestos import procs
from pvesim.guests.pack import guestos_pyz

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
STOP_GRACE = 5.0
READY_TIMEOUT = 10.0
BOOT_TIMEOUT = 60.0
# Run by the CT's user: store the tools (read from stdin) in the CT, then boot from them.
BOOTSTRAP = """\
import os, sys
dest = os.path.join(sys.argv[1], "usr/lib/pvesim/guestos.pyz")
os.makedirs(os.path.dirname(dest), exist_ok=True)
with open(dest + ".new", "wb") as fh:
    fh.write(sys.stdin.buffer.read())
os.replace(dest + ".new", dest)
os.execv(sys.executable, [sys.executable, dest, "boot"])
"""


def _prctl(option: int, value: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option})")


def _die_with_init() -> None:
    """In a child before its exec: SIGTERM when the init dies, even by SIGKILL."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _as_ct_user_child() -> None:
    _die_with_init()
    _prctl(PR_SET_NO_NEW_PRIVS, 1)


class Init:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.ct_dir = Path(spec["ct_dir"])
        self.private = Path(spec["private"])
        self.uid, self.gid = int(spec["uid"]), int(spec["gid"])
        self.lifeline = int(spec["lifeline_fd"])
        self.reaped: dict[int, int] = {}
        self.stopping = False
        self.sshd_pid: int | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)

    # -- plumbing --------------------------------------------------------------------------
    def _on_signal(self, signum: int, frame: object) -> None:
        self.stopping = True

    def setup(self) -> None:
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
        _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        os.set_inheritable(self.lifeline, False)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        signal.signal(signal.SIGCHLD, lambda s, f: None)
        signal.set_wakeup_fd(self._wake_w)

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.reaped[pid] = status

    def wait(self, timeout: float) -> None:
        """Sleep until a signal, the lifeline's end, or the timeout; reap children."""
        try:
            ready, _, _ = select.select([self.lifeline, self._wake_r], [], [], timeout)
        except InterruptedError:
            ready = []
        if self._wake_r in ready:
            os.read(self._wake_r, 512)
        if self.lifeline in ready and not os.read(self.lifeline, 1):
            self.stopping = True  # the simulator is gone
        self.reap()

    def _as_ct_user(self) -> dict[str, Any]:
        if self.uid == os.geteuid():
            return {"preexec_fn": _die_with_init}
        return {
            "user": self.uid,
            "group": self.gid,
            "extra_groups": [],
            "preexec_fn": _as_ct_user_child,
        }

    # -- the CT's life -----------------------------------------------------------------------
    def boot(self, log: Any) -> None:
        env = {
            "PATH": f"{self.ct_dir}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(self.ct_dir),
            "LANG": "C.UTF-8",
            "PVESIM_GUEST_ROOT": str(self.ct_dir),
            "PVESIM_BOOT": json.dumps(
                {
                    "hostname": self.spec["hostname"],
                    "keys": self.spec.get("keys"),
                    "packages": self.spec.get("packages") or [],
                    "python": self.spec["python"],
                }
            ),
        }
        proc = subprocess.Popen(
            [self.spec["python"], "-c", BOOTSTRAP, str(self.ct_dir)],
            cwd=self.ct_dir,
            env=env,
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=log,
            **self._as_ct_user(),
        )
        assert proc.stdin is not None
        proc.stdin.write(guestos_pyz())
        proc.stdin.close()
        deadline = time.monotonic() + BOOT_TIMEOUT
        while proc.pid not in self.reaped and time.monotonic() < deadline and not self.stopping:
            self.wait(0.2)

    def start_sshd(self, log: Any) -> str:
        """'ready PID' or 'failed REASON' (sshd's own words from its log)."""
        sshd_log = self.private / "sshd.log"
        with open(sshd_log, "ab") as out:
            offset = out.tell()
            proc = subprocess.Popen(
                [self.spec["sshd"], "-D", "-e", "-f", str(self.private / "sshd_config")],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                preexec_fn=_die_with_init,  # safe: the init has one thread
            )
        self.sshd_pid = proc.pid
        deadline = time.monotonic() + READY_TIMEOUT
        listening = f"Server listening on {self.spec['ip']} port 22"
        while time.monotonic() < deadline and not self.stopping:
            text = _read_from(sshd_log, offset)
            if listening in text:
                return f"ready {proc.pid}"
            if proc.pid in self.reaped:
                lines = [ln for ln in text.splitlines() if ln.strip()]
                return "failed sshd exited: " + " / ".join(lines[-3:] or ["(no message)"])
            self.wait(0.05)
        return "failed sshd did not report listening in time"

    def descendants(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for pid in procs.all_pids():
            fields = procs.stat_fields(pid)
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(pid)
        out, todo = [], [os.getpid()]
        while todo:
            for child in children.get(todo.pop(), []):
                out.append(child)
                todo.append(child)
        return out

    def unit_pids(self) -> list[int]:
        """The main PIDs in the CT's PID files (only those that are the CT's own)."""
        mine = set(self.descendants())
        out = []
        state_dir = self.ct_dir / "run" / "systemd" / "units"
        try:
            names = sorted(os.listdir(state_dir))
        except OSError:
            return []
        for name in names:
            if not name.endswith(".pid"):
                continue
            try:
                fd = os.open(state_dir / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
                with os.fdopen(fd) as fh:
                    pid = int(fh.read(32).split()[0])
            except (OSError, ValueError, IndexError):
                continue
            if pid in mine:
                out.append(pid)
        return out

    def stop_all(self) -> None:
        """Units by PID, then sshd, then everything else below; SIGKILL after the grace."""
        for pid in self.unit_pids():
            procs.signal_unit(pid, signal.SIGTERM)
        if self.sshd_pid is not None:
            _kill(self.sshd_pid, signal.SIGTERM)
        for pid in self.descendants():
            _kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        while self.descendants() and time.monotonic() < deadline:
            self.wait(0.05)
        for _ in range(50):
            left = self.descendants()
            if not left:
                break
            for pid in left:
                _kill(pid, signal.SIGKILL)
            self.wait(0.05)

    def report(self, status: str) -> None:
        """The one line for the simulator; if it is gone already, the CT stops."""
        try:
            sys.stdout.write(status + "\n")
            sys.stdout.flush()
        except OSError:
            self.stopping = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)

    def run(self) -> int:
        self.setup()
        with open(self.private / "init.log", "ab", buffering=0) as log:
            log.write(f"--- CT start {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
            try:
                self.boot(log)
                started = "failed stopped while starting" if self.stopping else None
                self.report(started or self.start_sshd(log))
                while not self.stopping:
                    self.wait(1.0)
            finally:  # whatever happened, nothing of the CT outlives its init
                self.stop_all()
                log.write(b"--- CT stopped\n")
        return 0


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _read_from(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            return fh.read().decode(errors="replace")
    except OSError:
        return ""


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[1]).read_text())
    return Init(spec).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
