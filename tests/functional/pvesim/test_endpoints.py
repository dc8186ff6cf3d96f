"""The remaining endpoints of the reference's section 3."""

from __future__ import annotations

import pytest
from proxmoxer import ProxmoxAPI, ResourceException

from pvesim.testing import SimAdmin
from tests.functional.pvesim.helpers import TEMPLATE, create_ct, wait_task


def test_version_and_cluster_status(pve: ProxmoxAPI) -> None:
    version = pve.version.get()
    assert (
        version["release"] == "9.2"
        and version["version"].startswith("9.2")
        and len(version["repoid"]) >= 8
    )
    status = pve.cluster.status.get()
    assert status[0] == {
        "type": "cluster",
        "id": "cluster",
        "name": "pvesim",
        "nodes": 2,
        "quorate": 1,
        "version": 3,
    }
    nodes = [s for s in status if s["type"] == "node"]
    assert [(n["name"], n["online"], n["local"], n["nodeid"]) for n in nodes] == [
        ("pve1", 1, 1, 1),
        ("pve2", 1, 0, 2),
    ]


def test_nodes_and_node_status(pve: ProxmoxAPI) -> None:
    nodes = pve.nodes.get()
    assert [n["node"] for n in nodes] == ["pve1", "pve2"]
    assert all(
        n["status"] == "online" and n["maxcpu"] == 16 and len(n["ssl_fingerprint"]) == 95
        for n in nodes
    )
    st = pve.nodes("pve1").status.get()
    assert (
        st["memory"]["total"] == 64 << 30
        and st["memory"]["used"] + st["memory"]["free"] == 64 << 30
    )
    assert (
        st["cpuinfo"]["cpus"] == 16
        and len(st["loadavg"]) == 3
        and all(isinstance(x, str) for x in st["loadavg"])
    )
    assert st["pveversion"].startswith("pve-manager/9.2") and st["uptime"] > 0
    assert set(st["rootfs"]) == {"total", "used", "free", "avail"}


def test_usage_changes_and_is_zero_when_stopped(pve: ProxmoxAPI, sim_admin: SimAdmin) -> None:
    create_ct(pve, 105, start=1)
    ct = pve.nodes("pve1").lxc(105)
    first = ct.status.current.get()
    assert 0 < first["cpu"] < 1 and 0 < first["mem"] < first["maxmem"] and first["disk"] > 0
    sim_admin.advance_clock(120)
    later = ct.status.current.get()
    assert (
        later["uptime"] >= 120 and later["netin"] > first["netin"] and later["mem"] != first["mem"]
    )
    node_before = pve.nodes("pve1").status.get()["memory"]["used"]
    wait_task(pve, ct.status.stop.post())
    stopped = ct.status.current.get()
    assert [stopped[k] for k in ("cpu", "mem", "disk", "uptime", "netin", "netout")] == [0] * 6
    assert stopped["maxmem"] == 1024 << 20
    assert pve.nodes("pve1").status.get()["memory"]["used"] < node_before


def test_cluster_resources_types(pve: ProxmoxAPI) -> None:
    create_ct(pve, 105, tags="a;b")
    everything = pve.cluster.resources.get()
    kinds = {r["type"] for r in everything}
    assert kinds == {"lxc", "node", "storage", "sdn"}
    ct = next(r for r in pve.cluster.resources.get(type="vm") if r["vmid"] == 105)
    assert (
        ct["id"] == "lxc/105"
        and ct["template"] == 0
        and ct["tags"] == "a;b"
        and ct["status"] == "stopped"
    )
    for key in (
        "maxcpu",
        "cpu",
        "maxmem",
        "mem",
        "maxdisk",
        "disk",
        "uptime",
        "netin",
        "netout",
        "diskread",
        "diskwrite",
    ):
        assert key in ct
    storages = pve.cluster.resources.get(type="storage")
    assert {s["id"] for s in storages} == {
        "storage/pve1/local",
        "storage/pve1/local-lvm",
        "storage/pve2/local",
        "storage/pve2/local-lvm",
    }
    assert {r["type"] for r in pve.cluster.resources.get(type="node")} == {"node"}


def test_storage_and_templates(pve: ProxmoxAPI) -> None:
    storages = {s["storage"]: s for s in pve.nodes("pve1").storage.get()}
    assert (
        storages["local"]["content"] == "backup,iso,vztmpl" and storages["local"]["type"] == "dir"
    )
    assert (
        storages["local-lvm"]["content"] == "images,rootdir"
        and storages["local-lvm"]["type"] == "lvmthin"
    )
    assert [s["storage"] for s in pve.nodes("pve1").storage.get(content="rootdir")] == ["local-lvm"]
    content = pve.nodes("pve1").storage("local").content.get(content="vztmpl")
    volids = {c["volid"] for c in content}
    assert (
        TEMPLATE in volids and "local:vztmpl/rockylinux-9-default_20240912_amd64.tar.xz" in volids
    )
    deb = next(c for c in content if c["volid"] == TEMPLATE)
    assert (
        deb["format"] == "tzst"
        and deb["content"] == "vztmpl"
        and deb["size"] > 0
        and deb["ctime"] > 0
    )
    with pytest.raises(ResourceException) as exc:
        pve.nodes("pve1").storage("nfs").content.get()
    assert exc.value.content == "storage 'nfs' does not exist"


def test_aplinfo_and_download(pve: ProxmoxAPI) -> None:
    apps = pve.nodes("pve1").aplinfo.get()
    alpine = next(a for a in apps if a["template"].startswith("alpine-3.22"))
    assert (
        alpine["type"] == "lxc"
        and alpine["section"] == "system"
        and alpine["location"].startswith("http")
    )
    assert len(alpine["sha512sum"]) == 128
    name = alpine["template"]
    assert f"local:vztmpl/{name}" not in {
        c["volid"] for c in pve.nodes("pve2").storage("local").content.get()
    }
    upid = pve.nodes("pve2").aplinfo.post(storage="local", template=name)
    assert upid.split(":")[5:7] == ["download", name]
    assert wait_task(pve, upid)["exitstatus"] == "OK"
    assert f"local:vztmpl/{name}" in {
        c["volid"] for c in pve.nodes("pve2").storage("local").content.get()
    }
    create_ct(pve, 105, node="pve2", ostemplate=f"local:vztmpl/{name}")
    assert pve.nodes("pve2").lxc(105).config.get()["ostype"] == "alpine"
    with pytest.raises(ResourceException) as exc:
        pve.nodes("pve2").aplinfo.post(storage="local", template="nope.tar.gz")
    assert exc.value.status_code == 400 and exc.value.errors == {"template": "no such template"}
    with pytest.raises(ResourceException) as exc:
        pve.nodes("pve2").aplinfo.post(storage="local-lvm", template=name)
    assert exc.value.content == "storage 'local-lvm' does not support templates"


def test_rrddata(pve: ProxmoxAPI, sim_admin: SimAdmin) -> None:
    """The basics through proxmoxer; PVE 9's resolution and fields: test_metrics.py."""
    create_ct(pve, 105, start=1)
    sim_admin.advance_clock(3600)
    points = pve.nodes("pve1").lxc(105).rrddata.get(timeframe="hour")
    assert len(points) == 60
    times = [p["time"] for p in points]
    assert times == sorted(times) and times[1] - times[0] == 60
    assert points[-1]["cpu"] > 0 and points[-1]["maxmem"] == 1024 << 20
    day = pve.nodes("pve1").lxc(105).rrddata.get(timeframe="day", cf="MAX")
    assert len(day) == 1440 and day[1]["time"] - day[0]["time"] == 60
    with pytest.raises(ResourceException) as exc:
        pve.nodes("pve1").lxc(105).rrddata.get()
    assert exc.value.errors == {"timeframe": "property is missing and it is not optional"}


def test_snapshots(pve: ProxmoxAPI, sim_admin: SimAdmin) -> None:
    create_ct(pve, 105, memory=512)
    ct = pve.nodes("pve1").lxc(105)
    assert (
        wait_task(pve, ct.snapshot.post(snapname="before", description="pre-upgrade"))["exitstatus"]
        == "OK"
    )
    ct.config.put(memory=2048)
    snaps = ct.snapshot.get()
    assert [s["name"] for s in snaps] == ["before", "current"]
    assert snaps[0]["description"] == "pre-upgrade" and snaps[0]["snaptime"] > 0
    assert snaps[1] == {
        "name": "current",
        "description": "You are here!",
        "running": 0,
        "parent": "before",
    }
    assert ct.config.get(snapshot="before")["memory"] == 512
    with pytest.raises(ResourceException) as exc:
        ct.snapshot.post(snapname="current")
    assert exc.value.content == "unable to use snapshot name 'current' (reserved name)"
    status = wait_task(pve, ct.snapshot.post(snapname="before"))
    assert status["exitstatus"] == "snapshot name 'before' already used"
    assert wait_task(pve, ct.snapshot("before").rollback.post(start=1))["exitstatus"] == "OK"
    assert ct.config.get()["memory"] == 512 and ct.status.current.get()["status"] == "running"
    assert ct.snapshot("before").get() == [{"cmd": "rollback"}, {"cmd": "config"}]
    assert wait_task(pve, ct.snapshot("before").delete())["exitstatus"] == "OK"
    assert [s["name"] for s in ct.snapshot.get()] == ["current"]
    status = wait_task(pve, ct.snapshot("gone").delete())
    assert status["exitstatus"] == "snapshot 'gone' does not exist"


def test_clone_and_template(pve: ProxmoxAPI) -> None:
    create_ct(pve, 105)
    src_net = pve.nodes("pve1").lxc(105).config.get()["net0"]
    upid = pve.nodes("pve1").lxc(105).clone.post(newid=106, hostname="copy")
    assert upid.split(":")[5:7] == ["vzclone", "105"]
    assert pve.nodes("pve1").lxc(105).config.get()["lock"] == "disk"
    assert pve.nodes("pve1").lxc(106).config.get()["lock"] == "create"
    assert wait_task(pve, upid)["exitstatus"] == "OK"
    clone = pve.nodes("pve1").lxc(106).config.get()
    assert clone["hostname"] == "copy" and clone["rootfs"] == "local-lvm:vm-106-disk-0,size=8G"
    assert clone["net0"] != src_net and "lock" not in clone
    assert "lock" not in pve.nodes("pve1").lxc(105).config.get()
    with pytest.raises(ResourceException) as exc:
        pve.nodes("pve1").lxc(105).clone.post(newid=107, full=0)
    assert (
        exc.value.content == "Linked clone feature for 'local-lvm:vm-105-disk-0' is not available"
    )
    with pytest.raises(ResourceException) as exc:
        pve.nodes("pve1").lxc(105).clone.post(newid=106)
    assert exc.value.content == "CT 106 already exists on node 'pve1'"
    # template (null, with a vztemplate worker in the background), then a linked clone
    assert pve.nodes("pve1").lxc(105).template.post() is None
    worker = pve.nodes("pve1").tasks.get(typefilter="vztemplate", source="all")[0]
    assert wait_task(pve, worker["upid"])["exitstatus"] == "OK"
    conf = pve.nodes("pve1").lxc(105).config.get()
    assert conf["template"] == 1 and conf["rootfs"].startswith("local-lvm:base-105-disk-0")
    assert wait_task(pve, pve.nodes("pve1").lxc(105).clone.post(newid=108))["exitstatus"] == "OK"
    upid = pve.nodes("pve1").lxc(105).status.start.post()
    assert wait_task(pve, upid)["exitstatus"] == "you can't start a CT if it's a template"


def test_clone_running_needs_snapshot(pve: ProxmoxAPI) -> None:
    create_ct(pve, 105, start=1)
    with pytest.raises(ResourceException) as exc:
        pve.nodes("pve1").lxc(105).clone.post(newid=106)
    assert exc.value.content == "Cannot do full clones on a running container without snapshots"
    assert "lock" not in pve.nodes("pve1").lxc(105).config.get()
    with pytest.raises(ResourceException):
        pve.nodes("pve1").lxc(106).config.get()


def test_resize(pve: ProxmoxAPI, sim_admin: SimAdmin) -> None:
    create_ct(pve, 105)
    ct = pve.nodes("pve1").lxc(105)
    upid = ct.resize.put(disk="rootfs", size="+2G")
    assert upid.split(":")[5] == "resize"
    assert wait_task(pve, upid)["exitstatus"] == "OK"
    assert ct.config.get()["rootfs"] == "local-lvm:vm-105-disk-0,size=10G"
    assert wait_task(pve, ct.resize.put(disk="rootfs", size="12G"))["exitstatus"] == "OK"
    assert ct.status.current.get()["maxdisk"] == 12 << 30
    for size, msg in (
        ("4G", "unable to shrink disk size"),
        ("12G", "disk is already at specified size"),
    ):
        with pytest.raises(ResourceException) as exc:
            ct.resize.put(disk="rootfs", size=size)
        assert (exc.value.status_code, exc.value.content) == (500, msg)
    with pytest.raises(ResourceException) as exc:
        ct.resize.put(disk="rootfs", size="2X")
    assert exc.value.errors == {"size": "value does not match the regex pattern"}
    with pytest.raises(ResourceException) as exc:
        ct.resize.put(disk="mp0", size="+1G")
    assert exc.value.content == "disk 'mp0' does not exist"
    sim_admin.set_storage_size("pve1", "local-lvm", 13 << 30)
    status = wait_task(pve, ct.resize.put(disk="rootfs", size="+5G"))
    assert status["exitstatus"].startswith(
        "lvextend 'pve/vm-105-disk-0' error:   Insufficient free space"
    )


def test_mountpoint_add_and_delete(pve: ProxmoxAPI) -> None:
    create_ct(pve, 105)
    ct = pve.nodes("pve1").lxc(105)
    ct.config.put(mp0="local-lvm:2,mp=/srv/data,backup=1")
    assert ct.config.get()["mp0"] == "local-lvm:vm-105-disk-1,mp=/srv/data,backup=1,size=2G"
    ct.config.put(delete="mp0")
    conf = ct.config.get()
    assert "mp0" not in conf and conf["unused0"] == "local-lvm:vm-105-disk-1"
    ct.config.put(delete="unused0")
    assert "unused0" not in ct.config.get()
    vols = {v["volid"] for v in pve.nodes("pve1").storage("local-lvm").content.get(vmid=105)}
    assert vols == {"local-lvm:vm-105-disk-0"}


def test_directory_indexes(pve: ProxmoxAPI) -> None:
    create_ct(pve, 105)
    assert {"subdir": "config"} in pve.nodes("pve1").lxc(105).get()
    assert {"subdir": "current"} in pve.nodes("pve1").lxc(105).status.get()
    with pytest.raises(ResourceException) as exc:
        pve.nodes("pve1").lxc(106).get()
    assert exc.value.content == "Configuration file 'nodes/pve1/lxc/106.conf' does not exist"
