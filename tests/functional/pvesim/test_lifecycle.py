"""The whole LXC lifecycle through proxmoxer, with token and ticket auth."""

from __future__ import annotations

import re

import pytest
from proxmoxer import ProxmoxAPI, ResourceException

from pvesim.testing import SimAdmin, SimulatorThread
from tests.functional.pvesim.helpers import TEMPLATE, create_ct, wait_task

UPID_RE = re.compile(r"^UPID:pve1:[0-9A-F]{8}:[0-9A-F]{8,9}:[0-9A-F]{8}:vzcreate:105:[^:\s]+:$")


@pytest.mark.parametrize("auth", ["token", "ticket"])
def test_full_lifecycle(
    auth: str, pve: ProxmoxAPI, pve_ticket: ProxmoxAPI, sim_admin: SimAdmin
) -> None:
    api = pve if auth == "token" else pve_ticket
    user = "portal@pve!portal" if auth == "token" else "root@pam"
    vmid = int(api.cluster.nextid.get())
    assert vmid == 100
    sim_admin.set_task_seconds("vzcreate", 0.3)

    upid = api.nodes("pve1").lxc.post(
        vmid=105,
        ostemplate=TEMPLATE,
        hostname="web1",
        rootfs="local-lvm:8",
        net0="name=eth0,bridge=vmbr0,ip=dhcp",
        cores=2,
        memory=1024,
        swap=0,
        password="s3cret!",
        features="nesting=1",
        tags="web;portal",
        description="owned by alice",
        start=1,
    )
    assert UPID_RE.match(upid) and upid.endswith(f":{user}:")

    # create_and_lock_config: the lock is visible before the worker is done
    conf = api.nodes("pve1").lxc(105).config.get()
    assert conf["lock"] == "create" and set(conf) == {"lock", "digest"}
    current = api.nodes("pve1").lxc(105).status.current.get()
    assert current["lock"] == "create" and current["status"] == "stopped"
    resources = api.cluster.resources.get(type="vm")
    assert [r["lock"] for r in resources if r["vmid"] == 105] == ["create"]
    running = api.nodes("pve1").tasks(upid).status.get()
    assert running["status"] == "running" and "exitstatus" not in running

    status = wait_task(api, upid)
    assert status["status"] == "stopped" and status["exitstatus"] == "OK"
    assert status["type"] == "vzcreate" and status["id"] == "105" and status["node"] == "pve1"
    log = api.nodes("pve1").tasks(upid).log.get()
    assert log[-1] == {"n": len(log), "t": "TASK OK"}
    assert any("extracting archive" in line["t"] for line in log)

    current = api.nodes("pve1").lxc(105).status.current.get()
    assert current["status"] == "running" and current["vmid"] == 105 and current["name"] == "web1"
    assert (
        current["maxmem"] == 1024 << 20 and current["maxdisk"] == 8 << 30 and current["cpus"] == 2
    )
    assert current["mem"] > 0 and current["ha"] == {"managed": 0} and "lock" not in current

    conf = api.nodes("pve1").lxc(105).config.get()
    assert (
        conf["hostname"] == "web1"
        and conf["cores"] == 2
        and conf["memory"] == 1024
        and conf["swap"] == 0
    )
    assert conf["rootfs"] == "local-lvm:vm-105-disk-0,size=8G"
    assert re.fullmatch(
        r"name=eth0,bridge=vmbr0,hwaddr=BC:24:11(:[0-9A-F]{2}){3},ip=dhcp,type=veth", conf["net0"]
    )
    assert conf["tags"] == "portal;web" and conf["features"] == "nesting=1"
    assert conf["description"] == "owned by alice\n"
    assert conf["unprivileged"] == 1 and conf["ostype"] == "debian" and conf["arch"] == "amd64"
    assert re.fullmatch(r"[0-9a-f]{40}", conf["digest"]) and "password" not in conf

    # PUT config is synchronous, checks the digest and handles delete
    assert (
        api.nodes("pve1").lxc(105).config.put(memory=2048, digest=conf["digest"], delete="features")
        is None
    )
    conf2 = api.nodes("pve1").lxc(105).config.get()
    assert conf2["memory"] == 2048 and "features" not in conf2 and conf2["digest"] != conf["digest"]
    with pytest.raises(ResourceException) as exc:
        api.nodes("pve1").lxc(105).config.put(memory=512, digest=conf["digest"])
    assert exc.value.status_code == 500
    assert (
        exc.value.content
        == "detected modified configuration - file changed by other user? Try again."
    )

    stop = api.nodes("pve1").lxc(105).status.stop.post()
    assert wait_task(api, stop)["exitstatus"] == "OK"
    assert api.nodes("pve1").lxc(105).status.current.get()["status"] == "stopped"
    assert api.nodes("pve1").lxc(105).interfaces.get() is None

    destroy = api.nodes("pve1").lxc(105).delete(purge=1, **{"destroy-unreferenced-disks": 1})
    assert wait_task(api, destroy)["exitstatus"] == "OK"
    with pytest.raises(ResourceException) as exc:
        api.nodes("pve1").lxc(105).config.get()
    assert exc.value.content == "Configuration file 'nodes/pve1/lxc/105.conf' does not exist"
    assert not [g for g in sim_admin.guests() if g["vmid"] == 105]
    assert not [
        v for v in api.nodes("pve1").storage("local-lvm").content.get() if v.get("vmid") == 105
    ]


def test_shutdown_and_reboot(pve: ProxmoxAPI) -> None:
    create_ct(pve, 110, start=1)
    ct = pve.nodes("pve1").lxc(110)
    first_pid = ct.status.current.get()["pid"]
    assert wait_task(pve, ct.status.reboot.post(timeout=10))["exitstatus"] == "OK"
    assert ct.status.current.get()["pid"] != first_pid
    assert wait_task(pve, ct.status.shutdown.post(timeout=30, forceStop=1))["exitstatus"] == "OK"
    assert ct.status.current.get()["status"] == "stopped"
    with pytest.raises(ResourceException) as exc:
        ct.status.reboot.post()
    assert (exc.value.status_code, exc.value.content) == (500, "VM 110 not running")
    with pytest.raises(ResourceException) as exc:
        ct.status.shutdown.post()
    assert exc.value.content == "CT 110 not running"


def test_destroy_running_needs_force(pve: ProxmoxAPI) -> None:
    create_ct(pve, 111, start=1)
    with pytest.raises(ResourceException) as exc:
        pve.nodes("pve1").lxc(111).delete()
    assert (exc.value.status_code, exc.value.content) == (
        500,
        "unable to destroy CT 111 - container is running",
    )
    status = wait_task(pve, pve.nodes("pve1").lxc(111).delete(force=1))
    assert status["exitstatus"] == "WARNINGS: 1"
    log = [line["t"] for line in pve.nodes("pve1").tasks(status["upid"]).log.get()]
    assert "WARN: forced to stop CT 111 before destroying!" in log and log[-1] == "TASK WARNINGS: 1"


def test_destroy_protected(pve: ProxmoxAPI) -> None:
    create_ct(pve, 112, protection=1)
    with pytest.raises(ResourceException) as exc:
        pve.nodes("pve1").lxc(112).delete()
    assert exc.value.content == "can't remove CT 112 - protection mode enabled"


def test_destroy_removes_acls(pve: ProxmoxAPI, pve_sim: SimulatorThread) -> None:
    create_ct(pve, 113)
    pve.access.acl.put(path="/vms/113", roles="PVEVMUser", users="root@pam")
    assert [a for a in pve.access.acl.get() if a["path"] == "/vms/113"]
    wait_task(pve, pve.nodes("pve1").lxc(113).delete(purge=1))
    assert not [a for a in pve.access.acl.get() if a["path"] == "/vms/113"]


def test_create_on_second_node_and_lists(pve: ProxmoxAPI) -> None:
    create_ct(pve, 201, node="pve2")
    assert [c["vmid"] for c in pve.nodes("pve2").lxc.get()] == [201]
    assert pve.nodes("pve1").lxc.get() == []
    assert int(pve.cluster.nextid.get()) == 100
    with pytest.raises(ResourceException) as exc:
        pve.nodes("pve1").lxc(201).status.current.get()
    assert exc.value.content == "Configuration file 'nodes/pve1/lxc/201.conf' does not exist"


def test_vmid_collision(pve: ProxmoxAPI, sim_admin: SimAdmin) -> None:
    create_ct(pve, 105)
    with pytest.raises(ResourceException) as exc:
        create_ct(pve, 105, node="pve2")
    assert (exc.value.status_code, exc.value.content) == (
        500,
        "CT 105 already exists on node 'pve1'",
    )
    sim_admin.create_foreign_guest("pve2", 101, type="qemu", name="win")
    with pytest.raises(ResourceException) as exc:
        create_ct(pve, 101)
    assert exc.value.content == "VM 101 already exists on node 'pve2'"


def test_storage_without_rootdir(pve: ProxmoxAPI) -> None:
    with pytest.raises(ResourceException) as exc:
        pve.nodes("pve1").lxc.post(vmid=120, ostemplate=TEMPLATE)
    assert exc.value.status_code == 400 and exc.value.content == "Parameter verification failed."
    assert exc.value.errors == {"storage": "storage 'local' does not support container directories"}


def test_missing_template_fails_in_task(pve: ProxmoxAPI) -> None:
    upid = create_ct(pve, 121, wait=False, ostemplate="local:vztmpl/nope.tar.zst")
    status = wait_task(pve, upid)
    assert (
        status["exitstatus"]
        == "unable to create CT 121 - volume 'local:vztmpl/nope.tar.zst' does not exist"
    )
    with pytest.raises(ResourceException):
        pve.nodes("pve1").lxc(121).config.get()


def test_unprivileged_default_and_privileged(pve: ProxmoxAPI) -> None:
    create_ct(pve, 122)
    create_ct(pve, 123, unprivileged=0)
    assert pve.nodes("pve1").lxc(122).config.get()["unprivileged"] == 1
    assert "unprivileged" not in pve.nodes("pve1").lxc(123).config.get()
