"""GET /cluster/resources held to Proxmox VE 9.2 (pve-manager API2::Cluster `resources`,
API2Tools::extract_*_stats), over HTTPS through proxmoxer: its parameter errors, the
per-entry privilege filtering (it never answers 403), the order of its entries, and each
entry's shape field by field against a shape written here from the schema's `returns`.

The module's tests share one simulator, set up as test_metrics_api.py's (`metrics_sim`,
conftest.py); a test that changes it undoes it.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests
from proxmoxer import ProxmoxAPI

from pvesim.testing import SimAdmin, SimulatorThread
from tests.functional.pvesim.metrics_world import (
    BOOL,
    GIB,
    INT,
    MIB,
    NUM,
    STR,
    UNDECLARED,
    Shape,
    assert_shape,
    bad_params,
    failure,
)

# GET /cluster/resources: `returns.items.properties` (only `id` and `type` required),
# then the fields each type carries (API2Tools::extract_*_stats).
RESOURCE: Shape = {
    "id": (STR, True),
    "type": (STR, True),
    "status": (STR, False),
    "name": (STR, False),
    "node": (STR, False),
    "vmid": (INT, False),
    "template": (BOOL, False),
    "cpu": (NUM, False),
    "maxcpu": (NUM, False),
    "mem": (INT, False),
    "memhost": (INT, False),
    "maxmem": (INT, False),
    "disk": (INT, False),
    "maxdisk": (INT, False),
    "uptime": (INT, False),
    "netin": (INT, False),
    "netout": (INT, False),
    "diskread": (INT, False),
    "diskwrite": (INT, False),
    "tags": (STR, False),
    "lock": (STR, False),
    "pool": (STR, False),
    "hastate": (STR, False),
    "level": (STR, False),
    "cgroup-mode": (INT, False),
    "storage": (STR, False),
    "plugintype": (STR, False),
    "content": (STR, False),
    "shared": (BOOL, False),
    "sdn": (STR, False),
}
GUEST_FIELDS = {
    "id", "type", "vmid", "node", "name", "status", "template", "maxcpu", "cpu", "maxmem",
    "mem", "memhost", "maxdisk", "disk", "uptime", "netin", "netout", "diskread", "diskwrite",
}  # fmt: skip
NODE_FIELDS = {"id", "type", "node", "status", "level", "cgroup-mode"}
NODE_STATS = {"uptime", "cpu", "mem", "disk", "maxcpu", "maxmem", "maxdisk"}  # Sys.Audit only
STORAGE_FIELDS = {
    "id", "type", "storage", "node", "plugintype", "status", "shared", "content", "disk",
    "maxdisk",
}  # fmt: skip
SDN_FIELDS = {"id", "type", "sdn", "node", "status"}


# -- GET /cluster/resources ------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "errors"),
    [
        (
            {"type": "lxc"},
            {
                "type": "value 'lxc' does not have a value in the enumeration 'vm, storage, node, sdn'"
            },
        ),
        # PVE 9 has no `pool` type any more
        (
            {"type": "pool"},
            {
                "type": "value 'pool' does not have a value in the enumeration "
                "'vm, storage, node, sdn'"
            },
        ),
        ({"bogus": "1"}, {"bogus": UNDECLARED}),
        (
            {"type": "qemu", "vmid": "105"},
            {
                "type": "value 'qemu' does not have a value in the enumeration "
                "'vm, storage, node, sdn'",
                "vmid": UNDECLARED,
            },
        ),
    ],
)
def test_resources_parameter_errors(
    metrics_api: ProxmoxAPI, nobody_api: ProxmoxAPI, params: dict[str, str], errors: dict[str, str]
) -> None:
    assert failure(metrics_api.cluster.resources.get, **params) == bad_params(errors)
    # `user => 'all'`: no permission check comes before the validation
    assert failure(nobody_api.cluster.resources.get, **params) == bad_params(errors)


def test_resources_repeated_type_is_an_array(metrics_sim: SimulatorThread) -> None:
    s = requests.Session()
    s.trust_env = False
    s.headers["Authorization"] = f"PVEAPIToken={metrics_sim.token_id}={metrics_sim.token_secret}"
    resp = s.get(
        f"{metrics_sim.url}/api2/json/cluster/resources?type=vm&type=node",
        verify=str(metrics_sim.ca_path),
    )
    assert (resp.status_code, resp.reason) == (400, "Parameter verification failed.")
    assert resp.json()["errors"] == {"type": "type check ('string') failed - got ARRAY"}


def test_resources_everything_in_order(metrics_api: ProxmoxAPI) -> None:
    everything = metrics_api.cluster.resources.get()
    for entry in everything:
        assert_shape(entry, RESOURCE)
    kinds = [e["type"] for e in everything]
    # guests (vmids sorted as strings, as Perl's `sort keys`), nodes, storages, SDN
    assert [e["id"] for e in everything if e["type"] in ("lxc", "qemu")] == [
        "qemu/1000",
        "lxc/105",
        "lxc/106",
    ]
    order = {"lxc": 0, "qemu": 0, "node": 1, "storage": 2, "sdn": 3}
    assert [order[k] for k in kinds] == sorted(order[k] for k in kinds)
    # storages: one entry per storage and node, storage by storage
    assert [e["id"] for e in everything if e["type"] == "storage"] == [
        "storage/pve1/local",
        "storage/pve2/local",
        "storage/pve1/local-lvm",
        "storage/pve2/local-lvm",
    ]
    # each `type` returns its own entries and nothing else
    by_filter: list[dict[str, Any]] = []
    for kind, types in (
        ("vm", {"lxc", "qemu"}),
        ("node", {"node"}),
        ("storage", {"storage"}),
        ("sdn", {"sdn"}),
    ):
        some = metrics_api.cluster.resources.get(type=kind)
        assert some and {e["type"] for e in some} == types, kind
        by_filter.extend(some)
    assert [e["id"] for e in by_filter] == [e["id"] for e in everything]


def test_resources_guests_field_by_field(metrics_api: ProxmoxAPI) -> None:
    vms = {e["vmid"]: e for e in metrics_api.cluster.resources.get(type="vm")}
    running, stopped, qemu = vms[105], vms[106], vms[1000]
    for entry in (running, stopped, qemu):
        assert_shape(entry, RESOURCE)
    assert set(running) == GUEST_FIELDS | {"tags", "pool"}
    assert set(stopped) == set(qemu) == GUEST_FIELDS
    assert (running["id"], running["type"], running["node"], running["name"]) == (
        "lxc/105",
        "lxc",
        "pve1",
        "ct105",
    )
    assert (running["status"], running["template"], running["pool"]) == ("running", 0, "web")
    assert isinstance(running["cpu"], float) and 0 < running["cpu"] < 1
    assert running["maxcpu"] == 2 and running["maxmem"] == 1024 * MIB
    assert 0 < running["mem"] <= running["memhost"] <= running["maxmem"]
    assert running["maxdisk"] == 8 * GIB and running["uptime"] >= 2 * 3600
    assert all(running[k] > 0 for k in ("netin", "netout", "diskread", "diskwrite"))
    assert "swap" not in running  # swap is status/current's alone
    zero = ("cpu", "mem", "memhost", "disk", "uptime", "netin", "netout", "diskread", "diskwrite")
    assert (stopped["id"], stopped["status"]) == ("lxc/106", "stopped")
    assert [stopped[k] for k in zero] == [0] * len(zero)
    assert (qemu["id"], qemu["type"], qemu["node"], qemu["status"]) == (
        "qemu/1000",
        "qemu",
        "pve2",
        "running",
    )
    # the same figures as status/current
    cur = metrics_api.nodes("pve1").lxc(105).status.current.get()
    for key in ("maxmem", "maxdisk", "netin", "diskwrite", "uptime", "status", "name"):
        assert running[key] == cur[key], key
    assert running["maxcpu"] == cur["cpus"]


def test_resources_nodes_storages_and_sdn_field_by_field(metrics_api: ProxmoxAPI) -> None:
    nodes = metrics_api.cluster.resources.get(type="node")
    assert [n["id"] for n in nodes] == ["node/pve1", "node/pve2"]
    for node in nodes:
        assert_shape(node, RESOURCE)
        assert set(node) == NODE_FIELDS | NODE_STATS
        assert (node["status"], node["level"], node["cgroup-mode"]) == ("online", "", 2)
        assert node["maxcpu"] == 16 and node["maxmem"] == 64 * GIB
        assert 0 < node["cpu"] < 1 and 0 < node["mem"] < node["maxmem"]
        assert 0 < node["disk"] < node["maxdisk"] and node["uptime"] > 0
    status = metrics_api.nodes("pve1").status.get()
    assert nodes[0]["maxdisk"] == status["rootfs"]["total"]
    storages = {s["id"]: s for s in metrics_api.cluster.resources.get(type="storage")}
    for entry in storages.values():
        assert_shape(entry, RESOURCE)
        assert set(entry) == STORAGE_FIELDS
        assert entry["status"] == "available" and entry["shared"] == 0
        assert 0 <= entry["disk"] <= entry["maxdisk"]
    local, lvm = storages["storage/pve1/local"], storages["storage/pve1/local-lvm"]
    assert (local["storage"], local["node"], local["plugintype"], local["content"]) == (
        "local",
        "pve1",
        "dir",
        "backup,iso,vztmpl",
    )
    assert (lvm["plugintype"], lvm["content"]) == ("lvmthin", "images,rootdir")
    assert lvm["disk"] >= 2 * 8 * GIB  # CTs 105 and 106
    for entry in metrics_api.cluster.resources.get(type="sdn"):
        assert_shape(entry, RESOURCE)
        assert set(entry) == SDN_FIELDS and entry["sdn"] == "localnetwork"


def test_resources_offline_node(metrics_api: ProxmoxAPI, metrics_admin: SimAdmin) -> None:
    metrics_admin.set_node_offline("pve2")
    try:
        by_id = {e["id"]: e for e in metrics_api.cluster.resources.get()}
    finally:
        metrics_admin.set_node_offline("pve2", offline=False)
    assert by_id["node/pve2"] == {
        "id": "node/pve2",
        "node": "pve2",
        "type": "node",
        "status": "offline",
        "level": "",
    }
    assert by_id["storage/pve2/local"]["status"] == "unknown"
    assert "disk" not in by_id["storage/pve2/local"]
    assert by_id["qemu/1000"]["status"] == "unknown"
    assert by_id["sdn/pve2/localnetwork"]["status"] == "unknown"


def test_resources_follow_each_entrys_privilege(
    metrics_api: ProxmoxAPI, vmuser_api: ProxmoxAPI, nobody_api: ProxmoxAPI
) -> None:
    """`user => 'all'`: no 403, each entry filtered on its own privilege."""
    # NoAccess: the nodes and nothing else, without their figures
    seen = nobody_api.cluster.resources.get()
    assert [e["id"] for e in seen] == ["node/pve1", "node/pve2"]
    assert all(set(e) == NODE_FIELDS for e in seen)
    assert nobody_api.cluster.resources.get(type="vm") == []
    assert nobody_api.cluster.resources.get(type="storage") == []
    # PVEVMUser: the guests (VM.Audit) but not the pool (Pool.Audit), nodes without
    # figures (Sys.Audit), no storages (Datastore.Audit), no SDN zones (SDN.Audit)
    seen = vmuser_api.cluster.resources.get()
    assert [e["type"] for e in seen] == ["qemu", "lxc", "lxc", "node", "node"]
    ct = next(e for e in seen if e["id"] == "lxc/105")
    full = next(e for e in metrics_api.cluster.resources.get(type="vm") if e["id"] == "lxc/105")
    assert full["pool"] == "web" and ct == {k: v for k, v in full.items() if k != "pool"}
    assert all(set(e) == NODE_FIELDS for e in seen if e["type"] == "node")
