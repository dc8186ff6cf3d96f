"""The deploy's SSH runner (containers/remote.py) against an emulated guest: the portal's
deploy key in a CT's keys, the system's ssh client, output line by line, stdin that
never reaches a command line, and ssh's own status when the key is not accepted."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from containers.deploy_key import deploy_public_key
from containers.remote import Remote, shared
from pvesim.testing import SimulatorProcess
from tests.functional.pvesim.helpers import create_ct, seed_keys

from .test_guests import _free_range, _port_open, _wait, base_dir  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db


def test_remote_runs_steps_in_a_ct_with_the_deploy_key(
    base_dir: Path,  # noqa: F811 - the fixture imported above
    pve_keys: Path,
    settings,
) -> None:
    settings.DEPLOY_KEY_DIR = base_dir / "deploy-key"
    state_dir = base_dir / "state"
    seed_keys(pve_keys, state_dir)
    with SimulatorProcess(
        state_dir, task_seconds=0.05, guest_emulation=True, bridges=[_free_range()]
    ) as sim:
        api = sim.proxmox()
        create_ct(api, 107, start=1, **{"ssh-public-keys": deploy_public_key() + "\n"})
        ip = api.nodes("pve1").lxc(107).interfaces.get()[1]["inet"].split("/")[0]
        _wait(lambda: _port_open(ip, 22), what="sshd")
        remote = Remote.for_container(ip, container_id=107)
        remote.wait_ready(timeout=20)

        lines: list[str] = []
        code = remote.run(
            'read -r secret; echo "got ${#secret} characters"; echo line two >&2; exit 3',
            stdin=b"hunter2-not-on-the-command-line\n",
            on_line=lines.append,
        )
        assert code == 3
        assert lines == ["got 31 characters", "line two"]
        # The host key was learnt on first contact (one entry, hashed by Debian's ssh).
        learnt = remote.known_hosts.read_text().splitlines()
        assert len(learnt) == 1 and " ssh-ed25519 " in learnt[0]

        # Another port on that address has no sshd: ssh's own 255, not the step's status.
        other = Remote(address=ip, known_hosts=remote.known_hosts, port=2, connect_timeout=2)
        assert other.run("true") == 255


def test_sessions_in_shared_take_one_connection_which_ends_with_the_block(
    base_dir: Path,  # noqa: F811 - the fixture imported above
    pve_keys: Path,
    settings,
) -> None:
    """A deploy's steps run in `shared(remote)`: one handshake and login for all of them
    (bench.launchpad: each connection of its own cost ~0.4 s), the same output, status and
    standard input per session, and no master left once the block ends."""
    settings.DEPLOY_KEY_DIR = base_dir / "deploy-key"
    state_dir = base_dir / "state"
    seed_keys(pve_keys, state_dir)
    with SimulatorProcess(
        state_dir, task_seconds=0.05, guest_emulation=True, bridges=[_free_range()]
    ) as sim:
        api = sim.proxmox()
        create_ct(api, 108, start=1, **{"ssh-public-keys": deploy_public_key() + "\n"})
        ip = api.nodes("pve1").lxc(108).interfaces.get()[1]["inet"].split("/")[0]
        _wait(lambda: _port_open(ip, 22), what="sshd")
        sshd_log = state_dir / "guest-sshd" / "108" / "sshd.log"
        Remote.for_container(ip, container_id=108).wait_ready(timeout=20)
        logins = sshd_log.read_text().count("Accepted publickey")

        lines: list[str] = []
        with shared(Remote.for_container(ip, container_id=108)) as remote:
            assert remote.control_path is not None
            for n in range(3):
                assert remote.run(f"echo session {n}", on_line=lines.append) == 0
            assert (
                remote.run(
                    "read -r word; echo got $word; exit 4", stdin=b"it\n", on_line=lines.append
                )
                == 4
            )
            assert remote.control_path.exists()
            directory = remote.control_path.parent
        assert lines == ["session 0", "session 1", "session 2", "got it"]
        assert sshd_log.read_text().count("Accepted publickey") == logins + 1
        assert not directory.exists()
        masters = subprocess.run(
            ["pgrep", "-f", f"ControlPath={directory}"], capture_output=True, check=False
        )
        assert masters.returncode == 1, masters.stdout  # none left
