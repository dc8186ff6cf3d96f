"""The pieces `manage.py demo` starts, and the bookkeeping that makes a restart safe.

- One demo per var directory: `var/demo.lock` is held while it runs.
- Ports are chosen before anything starts: the web port must be free (it is the one the
  user asked for), the others fall back to free ones.
- `var/demo-run.json` lists the ports and the PID and command line of everything the
  demo started. A demo that was killed (SIGKILL, a closed terminal) leaves it behind;
  the next one stops exactly those processes, if they still run the same command.
- Secrets (the admin's and the directory's passwords) live in `var/demo.json`, 0600.
- The containers' files live outside var/ (`guest_dir`), recorded in `var/demo.json`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError

from portal.gateway_defaults import LOCAL_STREAM_SHARDS
from portal.procs import free_ports, pid_alive, port_free, stop_pid
from portal.slapd import Person, Slapd, find_slapd

# What a first demo listens on; a port another program holds is replaced by a free one.
PREFERRED_PORTS = {
    "sim": 18006,
    "http": 18080,
    "https": 18443,
    "status": 18099,
    "dns": 15353,
    "ldap": 13389,
}
# The directory's people: alice an ordinary user, bob one of the operators (staff).
STAFF_GROUP = "operators"
DEMO_PEOPLE = (
    ("alice", "Alice", "Example", ("users",)),
    ("bob", "Bob", "Example", ("users", STAFF_GROUP)),
)
DEMO_GROUPS = ("users", STAFF_GROUP)


# -- the state file ------------------------------------------------------------------------------
def load_state(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Written 0600 from the first byte: it holds passwords."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(state, fh, indent=2)
    path.chmod(0o600)


# -- the containers' files -----------------------------------------------------------------------
GUEST_DIR_PREFIX = "cluster-portal-demo-guests-"


def guest_dir(var: Path, state: dict[str, Any]) -> Path:
    """Where the simulator keeps the CTs' directories (pvesim --guest-dir).

    Not under var/: a CT's processes run as `nobody`, which may not pass the home
    directory a checkout lives in (0700 or 0750). So a directory of mode 0711 under
    /var/tmp, made once and recorded in demo.json; kept across runs as var/pvesim is, and
    made anew (the old one removed) when the simulator's state is gone.
    """
    recorded = Path(state.get("guest_dir") or "/nonexistent")
    fresh_sim = not (var / "pvesim" / "state.json").exists()
    try:
        info = recorded.lstat()
        ours = stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid()
    except OSError:
        ours = False
    if ours and recorded.name.startswith(GUEST_DIR_PREFIX):
        if not fresh_sim:
            return recorded
        shutil.rmtree(recorded, ignore_errors=True)  # its CTs are gone with the state
    base = Path("/var/tmp")  # noqa: S108 - only as mkdtemp's parent: a fresh private name
    parent = base if base.is_dir() and os.access(base, os.W_OK) else None
    made = Path(tempfile.mkdtemp(prefix=GUEST_DIR_PREFIX, dir=parent))
    made.chmod(0o711)
    state["guest_dir"] = str(made)
    return made


# -- one demo per directory ----------------------------------------------------------------------
@contextlib.contextmanager
def demo_lock(var: Path) -> Iterator[None]:
    var.mkdir(parents=True, exist_ok=True)
    with open(var / "demo.lock", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            raise CommandError(
                f"another demo is running from {var} (pid {fh.read().strip() or '?'}); "
                "stop it first (Ctrl-C in its terminal)"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        yield


# -- ports ---------------------------------------------------------------------------------------


def choose_ports(web: int, sim: int) -> tuple[dict[str, int], list[str]]:
    """Every port the demo listens on, and a note for each one that had to move.

    The gateway's status port comes with one after it for each stream shard: all of them
    must be free.
    """
    if not port_free(web):
        raise CommandError(
            f"port {web} on 127.0.0.1 is in use (another portal, or another program); "
            f"start the demo on a free port with `manage.py demo --port N`"
        )
    wanted = {**PREFERRED_PORTS, "sim": sim}
    ports: dict[str, int] = {"web": web}
    taken: set[int] = {web}
    notes = []
    for name, port in wanted.items():
        span = 1 + LOCAL_STREAM_SHARDS if name == "status" else 1
        udp = name == "dns"  # dnsmasq answers on UDP and TCP alike

        def usable(first: int, span: int = span, udp: bool = udp) -> bool:
            block = range(first, first + span)
            return all(
                p not in taken and port_free(p) and not (udp and not port_free(p, udp=True))
                for p in block
            )

        if not usable(port):
            new = port
            while not usable(new):
                new = free_ports(span)
            notes.append(f"port {port} ({name}) is in use: using {new}")
            port = new
        ports[name] = port
        taken.update(range(port, port + span))
    return ports, notes


# -- what was started ----------------------------------------------------------------------------
def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


@dataclass
class Started:
    """Everything the demo started, stopped in reverse order; mirrored in demo-run.json."""

    run_file: Path
    ports: dict[str, int] = field(default_factory=dict)
    items: list[tuple[str, Any, Callable[[], dict[str, int]], str]] = field(default_factory=list)

    def launch(
        self, name: str, thing: Any, pids: Callable[[], dict[str, int]], *, group: str = ""
    ) -> Any:
        """Start `thing` (it has .start() and .stop()) and keep it for the stop; `pids`
        names the processes it runs, for the run file. A start that fails or is
        interrupted stops what it had started."""
        try:
            thing.start()
        except BaseException:
            with contextlib.suppress(Exception):
                thing.stop()
            raise
        self.items.append((name, thing, pids, group or name))
        self.write()
        return thing

    def pids(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for _, _, pids, _ in self.items:
            out.update({name: pid for name, pid in pids().items() if pid})
        return out

    def write(self) -> None:
        processes = {
            name: {"pid": pid, "cmdline": _cmdline(pid)} for name, pid in self.pids().items()
        }
        data = {"pid": os.getpid(), "ports": self.ports, "processes": processes}
        tmp = self.run_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        os.replace(tmp, self.run_file)

    def stop_all(self, say: Callable[[str], None]) -> None:
        """Stop in reverse order; consecutive items of one group (the Celery workers, whose
        warm shutdown takes seconds) together."""
        while self.items:
            group = [self.items.pop()]
            while self.items and self.items[-1][3] == group[0][3]:
                group.append(self.items.pop())
            threads = [
                threading.Thread(target=self._stop, args=(name, thing, say))
                for name, thing, _, _ in group
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        with contextlib.suppress(FileNotFoundError):
            self.run_file.unlink()

    @staticmethod
    def _stop(name: str, thing: Any, say: Callable[[str], None]) -> None:
        try:
            thing.stop()
        except Exception as exc:  # keep stopping the others
            say(f"could not stop {name}: {exc}")


def stop_leftovers(run_file: Path, gateway_dir: Path) -> list[str]:
    """Stop what a demo that did not exit cleanly left running (we hold the lock: it is gone).

    Only processes whose command line is still the recorded one (or, for nginx and
    dnsmasq, names this gateway directory) are signalled: PIDs get reused.
    """
    stopped = []
    try:
        recorded = json.loads(run_file.read_text()).get("processes", {})
    except (OSError, ValueError):
        recorded = {}
    for name, entry in recorded.items():
        pid, cmdline = int(entry.get("pid", 0)), entry.get("cmdline", "")
        if pid > 0 and cmdline and pid_alive(pid) and _cmdline(pid) == cmdline:
            nginx = name == "nginx" or name.startswith("stream-")
            stop_pid(pid, sig=signal.SIGQUIT if nginx else signal.SIGTERM)
            stopped.append(f"{name} (pid {pid})")
    run = gateway_dir / "run"
    for name, pid_file, sig in (
        ("nginx", run / "nginx.pid", signal.SIGQUIT),
        *((f.stem, f, signal.SIGQUIT) for f in sorted(run.glob("stream-*.pid"))),
        ("dnsmasq", run / "dnsmasq.pid", signal.SIGTERM),
    ):
        with contextlib.suppress(OSError, ValueError):
            pid = int(pid_file.read_text().strip())
            if pid_alive(pid) and str(gateway_dir) in _cmdline(pid):
                stop_pid(pid, sig=sig)
                stopped.append(f"{name} (pid {pid})")
    with contextlib.suppress(FileNotFoundError):
        run_file.unlink()
    return stopped


# -- the directory -------------------------------------------------------------------------------
def demo_directory(var: Path, state: dict[str, Any], port: int) -> tuple[Slapd | None, bool]:
    """A private slapd under var/ldap with the demo's people, to start (None if slapd is
    not installed), and whether it is new (so that the passwords are shown once)."""
    binaries = find_slapd()
    if binaries is None:
        return None, False
    run = var / "ldap"
    ldap = state.get("ldap")
    if not isinstance(ldap, dict) or not (run / "slapd.d").exists():
        # No passwords for the data on disk (or no data): build the directory anew.
        shutil.rmtree(run, ignore_errors=True)
        ldap = {"admin": secrets.token_urlsafe(16), "portal": secrets.token_urlsafe(16)}
        ldap.update({uid: secrets.token_urlsafe(9) for uid, *_ in DEMO_PEOPLE})
        state["ldap"] = ldap
        created = True
    else:
        created = False
    run.mkdir(parents=True, exist_ok=True)
    run.chmod(0o700)
    people = tuple(
        Person(uid, given, sn, ldap[uid], groups) for uid, given, sn, groups in DEMO_PEOPLE
    )
    server = Slapd(
        run,
        binaries[0],
        binaries[1],
        people=people,
        groups=DEMO_GROUPS,
        admin_password=ldap["admin"],
        portal_password=ldap["portal"],
        port=port,
    )
    return server, created


def tail(path: Path, lines: int = 20) -> str:
    try:
        with open(path, errors="replace") as fh:
            return "".join(fh.readlines()[-lines:])
    except OSError:
        return ""


# -- the warm pool ----------------------------------------------------------------------------------
# The demo keeps this many stopped CTs of its first template ready on each node (docs/pool.md).
DEMO_POOL_TEMPLATE = "debian-12"
DEMO_POOL_TARGET = 2


def demo_pools(site: Any) -> None:
    """Turn the pool on for the demo's template on each node, once: a target an operator
    changed later (0 included) is kept across restarts."""
    from containers.models import PoolTarget
    from containers.pool.services import pool_target_set

    template = site.templates.filter(name=DEMO_POOL_TEMPLATE).first()
    if template is None or PoolTarget.objects.filter(site=site).exists():
        return
    for node in site.nodes.order_by("slot"):
        pool_target_set(template=template, node=node, target=DEMO_POOL_TARGET, actor=None)
