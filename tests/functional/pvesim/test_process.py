"""The real server process: ready line, signals, persistence across restart."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from proxmoxer import ProxmoxAPI

from pvesim.testing import SimulatorProcess
from tests.functional.pvesim.helpers import create_ct, seed_keys, wait_task

SECRET = str(uuid.uuid4())


def test_persistence_across_restart(tmp_path: Path, pve_keys: Path) -> None:
    state_dir = tmp_path / "state"
    seed_keys(pve_keys, state_dir)
    tokens = {"portal@pve!portal": SECRET}
    sim = SimulatorProcess(
        state_dir, tokens=tokens, users={"root@pam": "pw12345"}, task_seconds=0.05
    )
    sim.start()
    try:
        assert re.fullmatch(r"https://127\.0\.0\.1:\d+", sim.url) and sim.port > 0
        api = sim.proxmox()
        create_ct(api, 105, start=1, tags="keep")
        api.access.acl.put(path="/vms/105", roles="PVEVMUser", users="root@pam")
        sim.admin.set_directory_users("ldap", ["erin"])
        wait_task(api, api.access.domains("ldap").sync.post(scope="users"))
        digest = api.nodes("pve1").lxc(105).config.get()["digest"]
        # a task still running when the process stops ends as "unexpected status"
        sim.admin.set_task_seconds("vzcreate", 60)
        running = create_ct(api, 106, wait=False)
        ca = sim.ca_path.read_bytes()
    finally:
        assert sim.stop() == 0  # SIGTERM exits cleanly

    saved = json.loads((state_dir / "state.json").read_text())
    assert {g["vmid"] for g in saved["guests"]} == {105, 106}

    sim2 = SimulatorProcess(state_dir, tokens=tokens, task_seconds=0.05)
    with sim2:
        assert sim2.ca_path.read_bytes() == ca  # TLS files are reused
        api2 = sim2.proxmox()
        conf = api2.nodes("pve1").lxc(105).config.get()
        assert conf["digest"] == digest and conf["tags"] == "keep"
        assert api2.nodes("pve1").lxc(105).status.current.get()["status"] == "running"
        assert ("/vms/105", "root@pam", "PVEVMUser") in {
            (a["path"], a["ugid"], a["roleid"]) for a in api2.access.acl.get()
        }
        assert "erin@ldap" in {u["userid"] for u in api2.access.users.get()}
        status = api2.nodes("pve1").tasks(running).status.get()
        assert (status["status"], status["exitstatus"]) == ("stopped", "unexpected status")
        assert (
            api2.nodes("pve1").lxc(106).config.get()["lock"] == "create"
        )  # as a killed worker leaves it
        # a ticket login with the password from the first run still works (users persist)
        ProxmoxAPI(
            sim2.host,
            port=sim2.port,
            user="root@pam",
            password="pw12345",
            verify_ssl=str(sim2.ca_path),
        )


def test_cli_rejects_bad_arguments(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pvesim", "--state-dir", str(tmp_path), "--token", "nonsense"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert proc.returncode == 2
    assert "invalid --token" in proc.stderr
    assert proc.stdout == ""


def test_sigint_and_token_role_from_cli(tmp_path: Path, pve_keys: Path) -> None:
    seed_keys(pve_keys, tmp_path)
    sim = SimulatorProcess(
        tmp_path, tokens={"ro@pve!audit": f"{SECRET}:PVEAuditor"}, task_seconds=0.05
    )
    with sim:
        api = sim.proxmox()
        assert api.cluster.resources.get(type="vm") == []
        with pytest.raises(Exception, match="403 Forbidden: Permission check failed"):
            create_ct(api, 105)
        assert sim.proc is not None
        sim.proc.send_signal(2)  # SIGINT
        assert sim.proc.wait(10) == 0
