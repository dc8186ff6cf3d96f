"""Config locks and the config flock, and which checks happen in the worker."""

from __future__ import annotations

import time

import pytest
from proxmoxer import ProxmoxAPI, ResourceException

from pvesim.testing import SimAdmin
from tests.functional.pvesim.helpers import create_ct, wait_task

FLOCK_TIMEOUT = "can't lock file '/run/lock/lxc/pve-config-105.lock' - got timeout"


def test_put_config_waits_for_the_flock_then_times_out(
    pve: ProxmoxAPI, sim_admin: SimAdmin
) -> None:
    create_ct(pve, 105)
    sim_admin.hold_lock(105, "backup")
    assert pve.nodes("pve1").lxc(105).config.get()["lock"] == "backup"
    sim_admin.set_lock_timeout(0.4)
    start = time.monotonic()
    with pytest.raises(ResourceException) as exc:
        pve.nodes("pve1").lxc(105).config.put(memory=256)
    assert time.monotonic() - start >= 0.4
    assert (exc.value.status_code, exc.value.content) == (500, FLOCK_TIMEOUT)
    # start/stop take the flock around the fork too
    with pytest.raises(ResourceException) as exc:
        pve.nodes("pve1").lxc(105).status.start.post()
    assert exc.value.content == FLOCK_TIMEOUT
    sim_admin.release_lock(105)
    pve.nodes("pve1").lxc(105).config.put(memory=256)
    assert pve.nodes("pve1").lxc(105).config.get()["memory"] == 256


def test_config_lock_without_flock(pve: ProxmoxAPI, sim_admin: SimAdmin) -> None:
    create_ct(pve, 105)
    sim_admin.hold_lock(105, "backup", flock=False)
    with pytest.raises(ResourceException) as exc:
        pve.nodes("pve1").lxc(105).config.put(memory=256)
    assert (exc.value.status_code, exc.value.content) == (500, "CT is locked (backup)")
    # start checks the lock inside the worker: a UPID, then a failed task
    upid = pve.nodes("pve1").lxc(105).status.start.post()
    assert wait_task(pve, upid)["exitstatus"] == "CT is locked (backup)"
    assert pve.nodes("pve1").lxc(105).status.current.get()["status"] == "stopped"


def test_put_during_create_waits_for_the_worker(pve: ProxmoxAPI, sim_admin: SimAdmin) -> None:
    sim_admin.set_task_seconds("vzcreate", 0.3)
    sim_admin.set_lock_timeout(5)
    upid = create_ct(pve, 105, wait=False)
    # the vzcreate worker holds the flock; PUT waits and then succeeds
    pve.nodes("pve1").lxc(105).config.put(description="set while creating")
    assert pve.nodes("pve1").tasks(upid).status.get()["exitstatus"] == "OK"
    assert pve.nodes("pve1").lxc(105).config.get()["description"] == "set while creating\n"


def test_put_during_slow_create_times_out(pve: ProxmoxAPI, sim_admin: SimAdmin) -> None:
    sim_admin.set_task_seconds("vzcreate", 5)
    sim_admin.set_lock_timeout(0.2)
    create_ct(pve, 105, wait=False)
    with pytest.raises(ResourceException) as exc:
        pve.nodes("pve1").lxc(105).config.put(memory=256)
    assert exc.value.content == FLOCK_TIMEOUT


def test_delete_locked_fails_at_once(pve: ProxmoxAPI, sim_admin: SimAdmin) -> None:
    sim_admin.set_manual_clock(True)
    create_ct(pve, 105, wait=False)
    start = time.monotonic()
    with pytest.raises(ResourceException) as exc:
        pve.nodes("pve1").lxc(105).delete()
    assert time.monotonic() - start < 0.2
    assert (exc.value.status_code, exc.value.content) == (500, "CT is locked (create)")


def test_start_stop_preconditions(pve: ProxmoxAPI) -> None:
    create_ct(pve, 105, start=1)
    with pytest.raises(ResourceException) as exc:
        pve.nodes("pve1").lxc(105).status.start.post()
    assert (exc.value.status_code, exc.value.content) == (500, "CT 105 already running")
    wait_task(pve, pve.nodes("pve1").lxc(105).status.stop.post())
    with pytest.raises(ResourceException) as exc:
        pve.nodes("pve1").lxc(105).status.stop.post()
    assert exc.value.content == "CT 105 not running"
    # a CT that does not exist: start forks, the worker fails; stop says not running
    upid = pve.nodes("pve1").lxc(404).status.start.post()
    assert (
        wait_task(pve, upid)["exitstatus"]
        == "Configuration file 'nodes/pve1/lxc/404.conf' does not exist"
    )
    with pytest.raises(ResourceException) as exc:
        pve.nodes("pve1").lxc(404).status.stop.post()
    assert exc.value.content == "CT 404 not running"


def test_stop_on_locked_running_ct_fails_in_task(pve: ProxmoxAPI, sim_admin: SimAdmin) -> None:
    create_ct(pve, 105, start=1)
    sim_admin.hold_lock(105, "snapshot", flock=False)
    upid = pve.nodes("pve1").lxc(105).status.shutdown.post()
    assert wait_task(pve, upid)["exitstatus"] == "CT is locked (snapshot)"
    with pytest.raises(ResourceException) as exc:
        pve.nodes("pve1").lxc(105).status.start.post()
    assert exc.value.content == "CT 105 already running"
    with pytest.raises(ResourceException) as exc:
        pve.nodes("pve1").lxc(105).delete(force=1)
    assert exc.value.content == "CT is locked (snapshot)"


def test_skiplock_is_root_only(pve: ProxmoxAPI, pve_ticket: ProxmoxAPI) -> None:
    create_ct(pve, 105)
    with pytest.raises(ResourceException) as exc:
        pve.nodes("pve1").lxc(105).status.start.post(skiplock=1)
    assert exc.value.status_code == 400 and exc.value.errors == {
        "skiplock": "Only root may use this option."
    }
    assert (
        wait_task(pve_ticket, pve_ticket.nodes("pve1").lxc(105).status.start.post(skiplock=1))[
            "exitstatus"
        ]
        == "OK"
    )
