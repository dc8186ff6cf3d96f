"""Helpers shared by the pvesim tests."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from proxmoxer import ProxmoxAPI
from proxmoxer.tools import Tasks

from pvesim.testing import SimulatorThread

TEMPLATE = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"
ROOT_PASSWORD = "rootpass"
TOKEN_ID = "portal@pve!portal"


def api_url(sim: SimulatorThread, path: str) -> str:
    return f"{sim.url}/api2/json{path}"


def wait_task(api: ProxmoxAPI, upid: str, timeout: float = 10) -> dict[str, Any]:
    status = Tasks.blocking_status(api, upid, timeout=timeout, polling_interval=0.02)
    assert status is not None, f"task {upid} did not finish"
    return dict(status)


def create_ct(
    api: ProxmoxAPI, vmid: int = 105, node: str = "pve1", wait: bool = True, **extra: Any
) -> str:
    params: dict[str, Any] = {
        "vmid": vmid,
        "ostemplate": TEMPLATE,
        "rootfs": "local-lvm:8",
        "hostname": f"ct{vmid}",
        "net0": "name=eth0,bridge=vmbr0,ip=dhcp",
        "memory": 1024,
    }
    params.update(extra)
    upid = api.nodes(node).lxc.post(**params)
    if wait:
        status = wait_task(api, upid)
        assert status["exitstatus"] == "OK", status
    return str(upid)


def seed_keys(keys: Path, state_dir: Path) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(keys / "tls", state_dir / "tls", dirs_exist_ok=True)
    for name in ("authkey.key", "pve-www.key"):
        shutil.copy2(keys / name, state_dir / name)
