"""UPIDs, task status/log/list, the manual clock."""

from __future__ import annotations

import urllib.parse

import pytest
import requests
from proxmoxer import ProxmoxAPI, ResourceException
from proxmoxer.tools import Tasks

from pvesim.tasks import decode_upid, make_upid
from pvesim.testing import SimAdmin, SimulatorThread
from tests.functional.pvesim.helpers import api_url, create_ct, wait_task


def test_upid_format_and_proxmoxer_decode(pve: ProxmoxAPI) -> None:
    upid = create_ct(pve, 105)
    decoded = Tasks.decode_upid(upid)
    assert decoded["node"] == "pve1" and decoded["type"] == "vzcreate" and decoded["id"] == "105"
    assert decoded["user"] == "portal@pve" and decoded["comment"] == ""
    parts = upid.split(":")
    assert (
        len(parts) == 9 and all(len(p) == 8 for p in parts[2:5]) and parts[7] == "portal@pve!portal"
    )
    assert decode_upid(upid) == {
        "node": "pve1",
        "pid": int(parts[2], 16),
        "pstart": int(parts[3], 16),
        "starttime": int(parts[4], 16),
        "type": "vzcreate",
        "id": "105",
        "user": "portal@pve!portal",
    }
    assert make_upid("pve", 0x12A3B4, 0x5F3C2D1, 0x6759A3F0, "vzcreate", "105", "root@pam") == (
        "UPID:pve:0012A3B4:05F3C2D1:6759A3F0:vzcreate:105:root@pam:"
    )


def test_status_raw_and_percent_encoded(
    pve_sim: SimulatorThread, http: requests.Session, pve: ProxmoxAPI
) -> None:
    upid = create_ct(pve, 105)
    raw = http.get(api_url(pve_sim, f"/nodes/pve1/tasks/{upid}/status"))
    enc = http.get(
        api_url(pve_sim, f"/nodes/pve1/tasks/{urllib.parse.quote(upid, safe='')}/status")
    )
    assert raw.status_code == enc.status_code == 200
    assert raw.json() == enc.json()
    data = raw.json()["data"]
    assert data["upid"] == upid and data["exitstatus"] == "OK" and data["tokenid"] == "portal"
    assert data["user"] == "portal@pve"
    log_raw = http.get(api_url(pve_sim, f"/nodes/pve1/tasks/{upid}/log")).json()
    log_enc = http.get(
        api_url(pve_sim, f"/nodes/pve1/tasks/{urllib.parse.quote(upid, safe='')}/log")
    ).json()
    assert log_raw == log_enc and log_raw["data"][-1]["t"] == "TASK OK"


def test_bad_and_unknown_upid(pve: ProxmoxAPI) -> None:
    with pytest.raises(ResourceException) as exc:
        pve.nodes("pve1").tasks("UPID:garbage").status.get()
    assert exc.value.status_code == 400 and exc.value.errors == {
        "upid": "unable to parse worker upid"
    }
    unknown = "UPID:pve1:0012A3B4:05F3C2D1:6759A3F0:vzcreate:105:root@pam:"
    with pytest.raises(ResourceException) as exc:
        pve.nodes("pve1").tasks(unknown).status.get()
    assert exc.value.errors == {"upid": "no such task"}
    with pytest.raises(ResourceException) as exc:
        pve.nodes("pve1").tasks(unknown).log.get()
    assert exc.value.errors == {"upid": "no such task"}


def test_task_lives_on_its_node(pve: ProxmoxAPI) -> None:
    upid = create_ct(pve, 105)
    with pytest.raises(ResourceException) as exc:
        pve.nodes("pve2").tasks(upid).status.get()
    assert exc.value.errors == {"upid": "no such task"}


def test_manual_clock_drives_tasks(pve: ProxmoxAPI, sim_admin: SimAdmin) -> None:
    sim_admin.set_manual_clock(True)
    sim_admin.set_task_seconds("vzcreate", 30)
    upid = create_ct(pve, 105, wait=False)
    for _ in range(3):
        assert pve.nodes("pve1").tasks(upid).status.get()["status"] == "running"
    assert pve.nodes("pve1").lxc(105).config.get()["lock"] == "create"
    sim_admin.advance_clock(10)
    assert pve.nodes("pve1").tasks(upid).status.get()["status"] == "running"
    sim_admin.advance_clock(25)
    status = pve.nodes("pve1").tasks(upid).status.get()
    assert status["status"] == "stopped" and status["exitstatus"] == "OK"
    assert "lock" not in pve.nodes("pve1").lxc(105).config.get()


def test_task_list_and_filters(pve: ProxmoxAPI, pve_ticket: ProxmoxAPI) -> None:
    create_ct(pve, 105)
    wait_task(pve, pve.nodes("pve1").lxc(105).status.start.post())
    stop = pve_ticket.nodes("pve1").lxc(105).status.stop.post()
    wait_task(pve, stop)
    tasks = pve.nodes("pve1").tasks.get()
    assert [t["type"] for t in tasks] == ["vzstop", "vzstart", "vzcreate"]
    first = tasks[0]
    assert set(first) >= {
        "upid",
        "node",
        "pid",
        "pstart",
        "starttime",
        "type",
        "id",
        "user",
        "endtime",
        "status",
    }
    assert first["status"] == "OK" and first["user"] == "root@pam"
    assert [t["type"] for t in pve.nodes("pve1").tasks.get(typefilter="vzstart")] == ["vzstart"]
    assert [t["type"] for t in pve.nodes("pve1").tasks.get(userfilter="root@pam")] == ["vzstop"]
    assert len(pve.nodes("pve1").tasks.get(limit=1)) == 1
    assert [t["type"] for t in pve.nodes("pve1").tasks.get(start=2)] == ["vzcreate"]
    assert pve.nodes("pve1").tasks.get(vmid=999) == []
    assert pve.nodes("pve2").tasks.get() == []


def test_running_tasks_listed_as_active(pve: ProxmoxAPI, sim_admin: SimAdmin) -> None:
    sim_admin.set_manual_clock(True)
    upid = create_ct(pve, 105, wait=False)
    assert pve.nodes("pve1").tasks.get() == []
    active = pve.nodes("pve1").tasks.get(source="active")
    assert [t["upid"] for t in active] == [upid] and "status" not in active[0]
    sim_admin.advance_clock(5)
    assert [t["upid"] for t in pve.nodes("pve1").tasks.get()] == [upid]


def test_error_task_log(pve: ProxmoxAPI, sim_admin: SimAdmin) -> None:
    upid = pve.nodes("pve1").lxc(999).status.start.post()
    status = wait_task(pve, upid)
    assert status["exitstatus"] == "Configuration file 'nodes/pve1/lxc/999.conf' does not exist"
    log = pve.nodes("pve1").tasks(upid).log.get()
    assert log == [
        {"n": 1, "t": "TASK ERROR: Configuration file 'nodes/pve1/lxc/999.conf' does not exist"}
    ]
    errors = pve.nodes("pve1").tasks.get(errors=1)
    assert [t["upid"] for t in errors] == [upid]


def test_stop_a_running_task(pve: ProxmoxAPI, sim_admin: SimAdmin) -> None:
    sim_admin.set_manual_clock(True)
    upid = create_ct(pve, 105, wait=False)
    assert pve.nodes("pve1").tasks(upid).delete() is None
    status = pve.nodes("pve1").tasks(upid).status.get()
    # the SIGTERM dies inside vzcreate's eval, so it gets the create prefix
    assert status["status"] == "stopped"
    assert status["exitstatus"] == "unable to create CT 105 - received interrupt"
    # vzcreate cleaned up after itself
    with pytest.raises(ResourceException):
        pve.nodes("pve1").lxc(105).config.get()
