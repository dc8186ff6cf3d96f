"""Guest emulation: a running CT on loopback gets a real OpenSSH server.

Real components: the simulator as a process (`python -m pvesim --guest-emulation`) over
HTTPS, /usr/sbin/sshd, the `ssh` client, and the CT's units as real processes.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from pvesim.testing import SimulatorProcess
from tests.conftest import need_binary
from tests.functional.pvesim.helpers import create_ct, seed_keys, wait_task

APP_UNIT = """\
[Unit]
Description=The test app

[Service]
WorkingDirectory=/srv/app
Environment=GREETING=hello
ExecStart=python3 -m http.server --bind {ip} 8080

[Install]
WantedBy=multi-user.target
"""


def _port_open(ip: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((ip, port)) == 0


def _wait(predicate: object, timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _pid_in(path: Path) -> int:
    """The PID a daemon wrote to `path`: sshd listens a moment before its PID file is whole."""
    _wait(lambda: path.exists() and path.read_text().strip().isdigit(), what=str(path))
    return int(path.read_text())


def _free_range() -> str:
    """A loopback /24 whose first addresses have nothing on port 22 (tests run side by side)."""
    for _ in range(50):
        third = random.randint(100, 250)
        if not any(_port_open(f"127.15.{third}.{h}", 22) for h in (10, 11)):
            return f"vmbr0=127.15.{third}.10-127.15.{third}.30/16,127.15.0.1"
    raise AssertionError("no free loopback range")


class Guest:
    def __init__(self, ip: str, key: Path) -> None:
        self.ip = ip
        self.key = key

    def ssh(
        self, command: str, key: Path | None = None, stdin: str | None = None, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                "ssh",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "LogLevel=ERROR",
                "-i",
                str(key or self.key),
                f"root@{self.ip}",
                command,
            ],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def run(self, command: str, stdin: str | None = None) -> str:
        result = self.ssh(command, stdin=stdin)
        assert result.returncode == 0, (command, result.stdout, result.stderr)
        return result.stdout


@pytest.fixture
def base_dir() -> Iterator[Path]:
    """A state directory the CT's user can walk to: pytest's own tmp is under a 0700
    directory, which `nobody` may not pass (the simulator says so and starts no sshd)."""
    for binary in ("/usr/sbin/sshd", "ssh", "ssh-keygen"):
        need_binary(binary)
    base = Path(tempfile.mkdtemp(prefix="pvesim-guests-"))
    base.chmod(0o711)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def _keys(base: Path) -> tuple[Path, Path]:
    for name in ("key", "other"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(base / name)], check=True
        )
    return base / "key", base / "other"


def _guest_pids(state_dir: Path) -> set[int]:
    """Every process whose command line or working directory is in the state directory."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if str(state_dir) in cmdline or cwd.startswith(str(state_dir)):
            found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_ct_on_loopback_runs_sshd_units_and_stand_ins(base_dir: Path, pve_keys: Path) -> None:
    key, other = _keys(base_dir)
    state_dir = base_dir / "state"
    seed_keys(pve_keys, state_dir)
    sim = SimulatorProcess(
        state_dir, task_seconds=0.1, guest_emulation=True, bridges=[_free_range()]
    )
    with sim:
        api = sim.proxmox()
        create_ct(api, 105, start=1, **{"ssh-public-keys": key.with_suffix(".pub").read_text()})
        ip = api.nodes("pve1").lxc(105).interfaces.get()[1]["inet"].split("/")[0]
        guest = Guest(ip, key)
        _wait(lambda: _port_open(ip, 22), what="sshd")
        ct_dir = state_dir / "guests" / "105"

        # A command runs as an unprivileged user, in the CT's directory; the create-time
        # key is the only one accepted.
        uid, cwd, home = guest.run("id -u; pwd; echo $HOME").split()
        assert int(uid) != 0 and int(uid) == ct_dir.stat().st_uid
        assert cwd == home == str(ct_dir)
        refused = guest.ssh("true", key=other)
        assert refused.returncode == 255 and "Permission denied" in refused.stderr

        # apt-get records; a unit is a real process on the CT's address.
        assert "Setting up redis-server" in guest.run("apt-get install -y redis-server")
        assert "Package: redis-server" in (ct_dir / "var/lib/dpkg/status").read_text()
        assert guest.run("systemctl is-active redis-server").strip() == "active"
        guest.run(
            'mkdir -p "$PVESIM_GUEST_ROOT/srv/app" "$PVESIM_GUEST_ROOT/etc/systemd/system"'
            ' && echo hi > "$PVESIM_GUEST_ROOT/srv/app/index.html"'
            ' && cat > "$PVESIM_GUEST_ROOT/etc/systemd/system/app.service"'
            " && systemctl daemon-reload && systemctl enable --now app",
            stdin=APP_UNIT.format(ip=ip),
        )
        _wait(lambda: _port_open(ip, 8080), what="the app")
        with urllib.request.urlopen(f"http://{ip}:8080/index.html", timeout=5) as resp:
            assert resp.read() == b"hi\n"  # served from the unit's WorkingDirectory
        first = int((ct_dir / "run/systemd/units/app.service.pid").read_text())
        guest.run("systemctl restart app.service")
        second = int((ct_dir / "run/systemd/units/app.service.pid").read_text())
        assert second != first and not _alive(first) and _alive(second)
        _wait(lambda: _port_open(ip, 8080), what="the restarted app")
        urllib.request.urlopen(f"http://{ip}:8080/", timeout=5).close()
        journal = guest.run("journalctl -u app -n 50")
        assert "GET /index.html" in journal and "Started app.service" in journal
        sshd_pid = _pid_in(state_dir / "guest-sshd/105/sshd.pid")

        # Stopping the CT stops sshd and the app before the task ends.
        wait_task(api, api.nodes("pve1").lxc(105).status.stop.post())
        assert not _alive(sshd_pid) and not _alive(second)
        assert not _port_open(ip, 22) and not _port_open(ip, 8080)

        # Starting it again brings sshd back, and the enabled unit with it.
        wait_task(api, api.nodes("pve1").lxc(105).status.start.post())
        _wait(lambda: _port_open(ip, 22) and _port_open(ip, 8080), what="sshd and the app")
        assert guest.run("systemctl is-active app").strip() == "active"
        app = int((ct_dir / "run/systemd/units/app.service.pid").read_text())
        sshd_pid = _pid_in(state_dir / "guest-sshd/105/sshd.pid")
        running = _guest_pids(state_dir)
        assert {app, sshd_pid} <= running
    # The simulator exited: nothing of its guests is left.
    _wait(lambda: not (_guest_pids(state_dir) & running), timeout=5, what="guest processes")
    assert not any(_alive(pid) for pid in running)


def test_no_sshd_leaves_the_ct_running_and_a_killed_simulator_leaves_nothing(
    base_dir: Path, pve_keys: Path
) -> None:
    key, _ = _keys(base_dir)
    state_dir = base_dir / "state"
    seed_keys(pve_keys, state_dir)
    bridge = _free_range()
    taken_ip = bridge.split("=")[1].split("-")[0]
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind((taken_ip, 22))
    blocker.listen()
    sim = SimulatorProcess(state_dir, task_seconds=0.1, guest_emulation=True, bridges=[bridge])
    try:
        sim.start()
        api = sim.proxmox()
        keys = {"ssh-public-keys": key.with_suffix(".pub").read_text()}
        create_ct(api, 105, start=1, **keys)  # gets the address whose port 22 is taken
        create_ct(api, 106, start=1, **keys)
        assert api.nodes("pve1").lxc(105).status.current.get()["status"] == "running"
        _wait(lambda: "CT 105" in sim.log_path.read_text(), what="the log line")
        log = sim.log_path.read_text()
        assert "CT 105 (" in log and "runs without an SSH server" in log
        assert "Address already in use" in log
        ip106 = api.nodes("pve1").lxc(106).interfaces.get()[1]["inet"].split("/")[0]
        _wait(lambda: _port_open(ip106, 22), what="CT 106's sshd")
        sshd_pid = _pid_in(state_dir / "guest-sshd/106/sshd.pid")
        running = _guest_pids(state_dir)
        assert sshd_pid in running
        assert sim.proc is not None
        os.kill(sim.proc.pid, signal.SIGKILL)  # no cleanup by the simulator itself
        sim.proc.wait(10)
        _wait(lambda: not (_guest_pids(state_dir) & running), what="the CT's processes to end")
        assert not _alive(sshd_pid)
    finally:
        blocker.close()
        sim.stop()


def test_guest_dir_puts_the_cts_outside_a_private_state_directory(
    base_dir: Path, pve_keys: Path, tmp_path: Path
) -> None:
    """--guest-dir: the state stays under a 0700 directory (a checkout in /root, as the
    demo's var/ may be); only the CTs' directories are where their user can reach."""
    key, _ = _keys(base_dir)
    state_dir = tmp_path / "state"  # below pytest's 0700 directory
    seed_keys(pve_keys, state_dir)
    state_mode = state_dir.stat().st_mode & 0o7777
    guests = base_dir / "guests"
    sim = SimulatorProcess(
        state_dir,
        task_seconds=0.05,
        guest_emulation=True,
        bridges=[_free_range()],
        guest_dir=guests,
    )
    with sim:
        api = sim.proxmox()
        create_ct(api, 105, start=1, **{"ssh-public-keys": key.with_suffix(".pub").read_text()})
        ip = api.nodes("pve1").lxc(105).interfaces.get()[1]["inet"].split("/")[0]
        _wait(lambda: _port_open(ip, 22), what="sshd")
        guest = Guest(ip, key)
        assert guest.run("pwd").strip() == str(guests / "105")
        # The session's pipes are the CT user's, as root's are in a real CT: /dev/stdin
        # and /dev/stderr reopen them.
        piped = guest.ssh('. /dev/stdin; echo "$A"; echo oops > /dev/stderr', stdin="A=x\n")
        assert (piped.returncode, piped.stdout, piped.stderr) == (0, "x\n", "oops\n")
        assert (guests / "105/.ssh/authorized_keys").exists()
        assert (state_dir / "guest-sshd/105/sshd.pid").exists()  # root's part stays private
        assert not (state_dir / "guests").exists()
        assert state_dir.stat().st_mode & 0o7777 == state_mode  # nothing opened up there
        wait_task(api, api.nodes("pve1").lxc(105).status.stop.post())
        wait_task(api, api.nodes("pve1").lxc(105).delete())
        _wait(lambda: not (guests / "105").exists(), what="the CT's directory to go")
