"""Every fault the admin interface offers."""

from __future__ import annotations

import time

import pytest
import requests
from proxmoxer import ProxmoxAPI, ResourceException

from pvesim.testing import SimAdmin, SimAdminError, SimulatorThread
from tests.functional.pvesim.helpers import TEMPLATE, api_url, create_ct, wait_task


def test_node_offline(
    pve: ProxmoxAPI, sim_admin: SimAdmin, pve_sim: SimulatorThread, http: requests.Session
) -> None:
    create_ct(pve, 205, node="pve2", start=1)
    sim_admin.set_node_offline("pve2")
    with pytest.raises(ResourceException) as exc:
        pve.nodes("pve2").lxc(205).status.current.get()
    assert exc.value.status_code == 595
    assert exc.value.content == "Connection refused"
    assert exc.value.status_message == "Errors during connection establishment, proxy handshake"
    resp = http.post(
        api_url(pve_sim, "/nodes/pve2/lxc"), data={"vmid": "206", "ostemplate": TEMPLATE}
    )
    assert (resp.status_code, resp.reason, resp.content) == (595, "Connection refused", b"")
    nodes = {n["node"]: n for n in pve.nodes.get()}
    assert nodes["pve2"]["status"] == "offline" and "cpu" not in nodes["pve2"]
    assert nodes["pve1"]["status"] == "online"
    res = {r["id"]: r for r in pve.cluster.resources.get()}
    assert res["lxc/205"]["status"] == "unknown" and "cpu" not in res["lxc/205"]
    assert res["node/pve2"]["status"] == "offline"
    assert res["storage/pve2/local-lvm"]["status"] == "unknown"
    assert [n["online"] for n in pve.cluster.status.get() if n["type"] == "node"] == [1, 0]
    # calls not proxied to the node, and the other node, still work
    assert pve.nodes("pve1").lxc.get() == []
    assert pve.nodes("pve2").lxc(205).rrddata.get(timeframe="hour")
    sim_admin.set_node_offline("pve2", reason="No route to host")
    with pytest.raises(ResourceException) as exc:
        pve.nodes("pve2").status.get()
    assert exc.value.content == "No route to host"
    sim_admin.set_node_offline("pve2", offline=False)
    assert pve.nodes("pve2").lxc(205).status.current.get()["status"] == "running"


def test_unknown_node(pve: ProxmoxAPI) -> None:
    with pytest.raises(ResourceException) as exc:
        pve.nodes("pve9").lxc.get()
    assert exc.value.status_code == 500
    assert exc.value.content == (
        "hostname lookup 'pve9' failed - failed to get address info for: pve9: Name or service not known"
    )


def test_no_quorum(pve: ProxmoxAPI, sim_admin: SimAdmin) -> None:
    create_ct(pve, 105)
    sim_admin.set_quorum(False)
    for call in (
        lambda: create_ct(pve, 106, wait=False),
        lambda: pve.nodes("pve1").lxc(105).config.put(memory=256),
        lambda: pve.nodes("pve1").lxc(105).status.start.post(),
        lambda: pve.nodes("pve1").lxc(105).delete(),
    ):
        with pytest.raises(ResourceException) as exc:
            call()
        assert (exc.value.status_code, exc.value.content) == (500, "cluster not ready - no quorum?")
    assert pve.cluster.status.get()[0]["quorate"] == 0
    assert pve.nodes("pve1").lxc(105).config.get()["hostname"] == "ct105"  # reads still work
    sim_admin.set_quorum(True)
    wait_task(pve, pve.nodes("pve1").lxc(105).status.start.post())


def test_fail_next_tasks(pve: ProxmoxAPI, sim_admin: SimAdmin) -> None:
    sim_admin.fail_next_tasks("vzcreate", 2, "unable to create CT - storage went away")
    for vmid in (105, 106):
        status = wait_task(pve, create_ct(pve, vmid, wait=False))
        assert status["exitstatus"] == "unable to create CT - storage went away"
        log = pve.nodes("pve1").tasks(status["upid"]).log.get()
        assert log[-1]["t"] == "TASK ERROR: unable to create CT - storage went away"
    assert not [g for g in sim_admin.guests() if g["vmid"] in (105, 106)]  # cleaned up
    create_ct(pve, 105)  # the third one works
    sim_admin.fail_next_tasks("vzstart", 1, "startup for container '105' failed")
    status = wait_task(pve, pve.nodes("pve1").lxc(105).status.start.post())
    assert status["exitstatus"] == "startup for container '105' failed"
    assert pve.nodes("pve1").lxc(105).status.current.get()["status"] == "stopped"


def test_warn_next_tasks(pve: ProxmoxAPI, sim_admin: SimAdmin) -> None:
    sim_admin.warn_next_tasks("vzcreate", 1, "a storage warning")
    status = wait_task(pve, create_ct(pve, 105, wait=False))
    assert status["exitstatus"] == "WARNINGS: 1"
    log = [line["t"] for line in pve.nodes("pve1").tasks(status["upid"]).log.get()]
    assert log[-2:] == ["WARN: a storage warning", "TASK WARNINGS: 1"]


def test_fail_next_requests_transient(pve: ProxmoxAPI, sim_admin: SimAdmin) -> None:
    sim_admin.fail_next_requests("POST", r"^/nodes/pve1/lxc$", 2, 595, "Connection refused")
    for _ in range(2):
        with pytest.raises(ResourceException) as exc:
            create_ct(pve, 105, wait=False)
        assert (exc.value.status_code, exc.value.content) == (595, "Connection refused")
    create_ct(pve, 105)
    sim_admin.fail_next_requests(
        "GET",
        "/status/current$",
        1,
        500,
        "can't lock file '/run/lock/lxc/pve-config-105.lock' - got timeout",
    )
    with pytest.raises(ResourceException) as exc:
        pve.nodes("pve1").lxc(105).status.current.get()
    assert exc.value.status_code == 500 and exc.value.content.startswith("can't lock file")
    assert pve.nodes("pve1").lxc(105).status.current.get()["status"] == "stopped"


def test_slow_tasks(pve: ProxmoxAPI, sim_admin: SimAdmin) -> None:
    sim_admin.set_task_seconds("vzstart", 0.5)
    create_ct(pve, 105)
    start = time.monotonic()
    wait_task(pve, pve.nodes("pve1").lxc(105).status.start.post())
    assert time.monotonic() - start >= 0.5
    sim_admin.set_task_seconds(None, 0.01)
    start = time.monotonic()
    wait_task(pve, pve.nodes("pve1").lxc(105).status.stop.post())
    assert time.monotonic() - start < 0.5


def test_latency(pve: ProxmoxAPI, sim_admin: SimAdmin) -> None:
    sim_admin.set_latency(0.3)
    start = time.monotonic()
    pve.version.get()
    assert time.monotonic() - start >= 0.3
    sim_admin.reset_faults()
    start = time.monotonic()
    pve.version.get()
    assert time.monotonic() - start < 0.3


def test_delay_next_requests(pve: ProxmoxAPI, sim_admin: SimAdmin) -> None:
    create_ct(pve, 107)
    sim_admin.delay_next_requests("GET", r"/lxc/107/status/current$", 0.4)
    pve.version.get()  # other calls are not held
    assert sim_admin.state()["faults"]["delayed"] == 0
    start = time.monotonic()
    assert pve.nodes("pve1").lxc(107).status.current.get()["status"] == "stopped"
    assert time.monotonic() - start >= 0.4
    assert sim_admin.state()["faults"]["delayed"] == 1
    start = time.monotonic()
    pve.nodes("pve1").lxc(107).status.current.get()  # count 1: the next one is quick
    assert time.monotonic() - start < 0.4
    sim_admin.reset_faults()
    assert sim_admin.state()["faults"]["delayed"] == 0


def test_reset_faults(pve: ProxmoxAPI, sim_admin: SimAdmin) -> None:
    create_ct(pve, 105)
    sim_admin.set_node_offline("pve1")
    sim_admin.set_quorum(False)
    sim_admin.hold_lock(105, "backup")
    sim_admin.fail_next_tasks("vzstart", 5, "x")
    sim_admin.reset_faults()
    state = sim_admin.state()
    assert state["faults"] == {
        "offline": {},
        "quorum": True,
        "task_faults": {},
        "request_faults": [],
        "latency": 0.0,
        "delayed": 0,
    }
    assert state["flocks"] == {}
    wait_task(pve, pve.nodes("pve1").lxc(105).status.start.post())


def test_storage_full(pve: ProxmoxAPI, sim_admin: SimAdmin) -> None:
    sim_admin.set_storage_size("pve1", "local-lvm", 10 << 30)
    create_ct(pve, 105, rootfs="local-lvm:8")
    status = wait_task(pve, create_ct(pve, 106, wait=False, rootfs="local-lvm:8"))
    assert status["exitstatus"] == (
        "unable to create CT 106 - lvcreate 'pve/vm-106-disk-0' error:   Volume group \"pve\" has "
        "insufficient free space (512 extents): 2048 required."
    )
    storage = {s["storage"]: s for s in pve.nodes("pve1").storage.get()}
    assert storage["local-lvm"]["used"] == 8 << 30 and storage["local-lvm"]["avail"] == 2 << 30


def test_node_memory_bound(tmp_path, pve_keys) -> None:  # type: ignore[no-untyped-def]
    from tests.functional.pvesim.helpers import seed_keys

    seed_keys(pve_keys, tmp_path)
    sim = SimulatorThread(tmp_path, task_seconds=0.02)
    with sim:
        with sim.state.lock:
            sim.state.nodes["pve1"].memory = 3 << 30
        api = sim.proxmox()
        create_ct(api, 105, memory=2048, start=1)
        status = wait_task(api, create_ct(api, 106, memory=2048, wait=False, start=1))
        assert status["exitstatus"] == "startup for container '106' failed"
        assert api.nodes("pve1").lxc(106).status.current.get()["status"] == "stopped"


def test_held_lock_and_foreign_guests(pve: ProxmoxAPI, sim_admin: SimAdmin) -> None:
    sim_admin.create_foreign_guest("pve1", 150, name="legacy", status="running", tags="old")
    sim_admin.create_foreign_guest("pve2", 151, type="qemu", name="windows")
    res = {r["id"]: r for r in pve.cluster.resources.get(type="vm")}
    assert res["lxc/150"]["name"] == "legacy" and res["lxc/150"]["status"] == "running"
    assert res["qemu/151"]["type"] == "qemu" and res["qemu/151"]["node"] == "pve2"
    assert pve.nodes("pve1").lxc(150).config.get()["tags"] == "old"
    with pytest.raises(SimAdminError):
        sim_admin.create_foreign_guest("pve1", 150)
    sim_admin.set_guest_status(150, "stopped")
    assert pve.nodes("pve1").lxc(150).status.current.get()["status"] == "stopped"


def test_admin_state_dump(pve: ProxmoxAPI, sim_admin: SimAdmin) -> None:
    create_ct(pve, 105)
    state = sim_admin.state()
    guest = next(g for g in state["guests"] if g["vmid"] == 105)
    assert guest["conf"]["hostname"] == "ct105" and guest["status"] == "stopped"
    assert [t["type"] for t in state["tasks"]] == ["vzcreate"]
    assert "portal@pve!portal" in state["superusers"]
    assert sim_admin.tasks()[0]["exitstatus"] == "OK"


def test_pools(pve: ProxmoxAPI, sim_admin: SimAdmin) -> None:
    with pytest.raises(ResourceException) as exc:
        create_ct(pve, 105, pool="customers")
    assert (exc.value.status_code, exc.value.content) == (500, "pool 'customers' does not exist")
    sim_admin.create_pool("customers")
    create_ct(pve, 105, pool="customers")
    assert (
        next(r for r in pve.cluster.resources.get(type="vm") if r["vmid"] == 105)["pool"]
        == "customers"
    )


def test_admin_is_loopback_only(pve_sim: SimulatorThread) -> None:
    import io
    import json

    seen: list[str] = []
    environ = {
        "REMOTE_ADDR": "192.0.2.7",
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/_sim/state",
        "wsgi.input": io.BytesIO(b""),
    }
    body = b"".join(pve_sim.server.app(environ, lambda status, headers: seen.append(status)))
    assert seen == ["403 Forbidden"]
    assert "loopback" in json.loads(body)["data"]["error"]


def test_fail_any_method(pve: ProxmoxAPI, sim_admin: SimAdmin) -> None:
    sim_admin.fail_next_requests("*", "^/version$", 1, 596, "Errors during TLS negotiation")
    with pytest.raises(ResourceException) as exc:
        pve.version.get()
    assert exc.value.status_code == 596
    assert pve.version.get()["release"] == "9.2"
