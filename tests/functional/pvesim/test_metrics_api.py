"""Three metrics endpoints held to Proxmox VE 9.2's declarations and checks, over HTTPS
through proxmoxer: rrddata, status/current and the node's status. For each, the parameter
errors in Proxmox's order and words, the privilege checks, and the answer's shape field by
field against a shape written here from the schema's `returns`. /cluster/resources:
test_metrics_resources.py.

The module's tests share one simulator (`metrics_sim`, conftest.py: a frozen clock, CT 105
running in pool `web`, CT 106 stopped, a qemu guest 1000 on pve2; tokens in
metrics_world.py). A test that changes it undoes it.
"""

from __future__ import annotations

import pytest
from proxmoxer import ProxmoxAPI

from pvesim.testing import SimAdmin
from tests.functional.pvesim.metrics_world import (
    BOOL,
    DICT,
    GIB,
    INT,
    LIST,
    MIB,
    MISSING,
    NUM,
    STR,
    UNDECLARED,
    Shape,
    assert_shape,
    bad_params,
    failure,
)

# GET /nodes/{node}/lxc/{vmid}/status/current: `returns.properties`, plus what
# PVE::LXC::vmstatus sets that the schema leaves out (`type`, `swap`, `pid`,
# `pressurecpufull`).
STATUS_CURRENT: Shape = {
    "vmid": (INT, True),
    "status": (STR, True),
    "ha": (DICT, True),
    "name": (STR, False),
    "cpu": (NUM, False),
    "cpus": (NUM, False),
    "mem": (INT, False),
    "maxmem": (INT, False),
    "maxswap": (INT, False),
    "disk": (INT, False),
    "maxdisk": (INT, False),
    "uptime": (INT, False),
    "netin": (INT, False),
    "netout": (INT, False),
    "diskread": (INT, False),
    "diskwrite": (INT, False),
    "pressurecpusome": (NUM, False),
    "pressureiosome": (NUM, False),
    "pressureiofull": (NUM, False),
    "pressurememorysome": (NUM, False),
    "pressurememoryfull": (NUM, False),
    "lock": (STR, False),
    "tags": (STR, False),
    "template": (BOOL, False),
    # set by vmstatus, not declared
    "type": (STR, True),
    "swap": (INT, True),
    "pressurecpufull": (NUM, False),
    "pid": (INT, False),
}

# GET /nodes/{node}/status: `returns` (additionalProperties 1: the others Nodes.pm sets
# are checked below them).
NODE_STATUS: Shape = {
    "cpu": (NUM, True),
    "loadavg": (LIST, True),
    "pveversion": (STR, True),
    "cpuinfo": (DICT, True),
    "memory": (DICT, True),
    "rootfs": (DICT, True),
    "boot-info": (DICT, True),
    "current-kernel": (DICT, True),
    # not declared, set by Nodes.pm `status`
    "uptime": (INT, True),
    "idle": (INT, True),
    "wait": (NUM, True),
    "kversion": (STR, True),
    "swap": (DICT, True),
    "ksm": (DICT, True),
}

# rrddata declares no fields (`items: {properties: {}}`): rrd_def_vm_pve9_0's are all numbers.
RRD_FIELDS = {
    "maxcpu", "cpu", "maxmem", "mem", "maxdisk", "disk", "netin", "netout", "diskread",
    "diskwrite", "memhost", "pressurecpusome", "pressurecpufull", "pressureiosome",
    "pressureiofull", "pressurememorysome", "pressurememoryfull",
}  # fmt: skip


# -- GET /nodes/{node}/lxc/{vmid}/rrddata ------------------------------------------

TIMEFRAMES = (
    "value 'minute' does not have a value in the enumeration 'hour, day, week, month, year'"
)


@pytest.mark.parametrize(
    ("params", "errors"),
    [
        ({}, {"timeframe": MISSING}),
        ({"timeframe": "minute"}, {"timeframe": TIMEFRAMES}),
        # the node call's `decade` is not the guest call's
        (
            {"timeframe": "decade"},
            {
                "timeframe": "value 'decade' does not have a value in the enumeration "
                "'hour, day, week, month, year'"
            },
        ),
        (
            {"timeframe": "hour", "cf": "avg"},
            {"cf": "value 'avg' does not have a value in the enumeration 'AVERAGE, MAX'"},
        ),
        ({"timeframe": "hour", "bogus": "1"}, {"bogus": UNDECLARED}),
        # every failure at once, one per parameter
        (
            {"timeframe": "minute", "cf": "avg", "ds": "cpu"},
            {
                "timeframe": TIMEFRAMES,
                "cf": "value 'avg' does not have a value in the enumeration 'AVERAGE, MAX'",
                "ds": UNDECLARED,
            },
        ),
    ],
)
def test_rrddata_parameter_errors(
    metrics_api: ProxmoxAPI, params: dict[str, str], errors: dict[str, str]
) -> None:
    assert failure(metrics_api.nodes("pve1").lxc(105).rrddata.get, **params) == bad_params(errors)


def test_rrddata_vmid_is_checked_after_the_permission(
    metrics_api: ProxmoxAPI, nobody_api: ProxmoxAPI
) -> None:
    ct = metrics_api.nodes("pve1").lxc
    assert failure(ct("abc").rrddata.get, timeframe="hour") == bad_params(
        {"vmid": "type check ('integer') failed - got 'abc'"}
    )
    assert failure(ct(99).rrddata.get, timeframe="hour") == bad_params(
        {"vmid": "invalid format - value does not look like a valid VM ID\n"}
    )
    # the permission check comes first: no 400 for a token without VM.Audit
    assert failure(nobody_api.nodes("pve1").lxc(105).rrddata.get, timeframe="minute") == (
        403,
        "Permission check failed (/vms/105, VM.Audit)",
        None,
    )


def test_rrddata_reads_the_guests_file_whatever_the_node(
    metrics_api: ProxmoxAPI, metrics_admin: SimAdmin, vmuser_api: ProxmoxAPI
) -> None:
    """No proxyto and no config check: the node in the path is not looked at, so an
    offline node or another node's name still reads the guest's RRD."""
    here = metrics_api.nodes("pve1").lxc(105).rrddata.get(timeframe="hour")
    assert metrics_api.nodes("pve2").lxc(105).rrddata.get(timeframe="hour") == here
    assert vmuser_api.nodes("pve1").lxc(105).rrddata.get(timeframe="hour") == here
    metrics_admin.set_node_offline("pve1")
    try:
        assert metrics_api.nodes("pve1").lxc(105).rrddata.get(timeframe="hour") == here
        assert failure(metrics_api.nodes("pve1").lxc(105).status.current.get) == (
            595,
            "Connection refused",
            None,
        )
    finally:
        metrics_admin.set_node_offline("pve1", offline=False)
    assert failure(metrics_api.nodes("pve1").lxc(999).rrddata.get, timeframe="hour") == (
        500,
        "RRD error: rrdcached@unix:/var/run/rrdcached.sock: rrd_fetch_r failed: "
        "opening '/var/lib/rrdcached/db/pve-vm-9.0/999': No such file or directory",
        None,
    )


@pytest.mark.parametrize("cf", ["AVERAGE", "MAX"])
def test_rrddata_buckets_field_by_field(metrics_api: ProxmoxAPI, cf: str) -> None:
    points = metrics_api.nodes("pve1").lxc(105).rrddata.get(timeframe="hour", cf=cf)
    assert len(points) == 60
    for point in points:
        assert isinstance(point["time"], int) and point["time"] % 60 == 0
        assert set(point) == {"time", *RRD_FIELDS}, point
        assert all(isinstance(point[k], int | float) for k in RRD_FIELDS), point
        assert 0 <= point["cpu"] <= 1 and point["maxcpu"] == 2
        assert 0 < point["mem"] <= point["memhost"] <= point["maxmem"] == 1024 * MIB
        assert point["maxdisk"] == 8 * GIB and 0 < point["disk"] < point["maxdisk"]
    # a week reaches back before the CT existed: those buckets carry only `time`
    week = metrics_api.nodes("pve1").lxc(106).rrddata.get(timeframe="week", cf=cf)
    empty = [p for p in week if len(p) == 1]
    assert empty and all(set(p) == {"time"} for p in empty)
    stopped = [p for p in week if len(p) > 1]
    assert stopped and all(p["cpu"] == 0 and p["maxmem"] == 1024 * MIB for p in stopped)


# -- GET /nodes/{node}/lxc/{vmid}/status/current ------------------------------------


def test_status_current_errors_in_proxmoxs_order(
    metrics_api: ProxmoxAPI, metrics_admin: SimAdmin, nobody_api: ProxmoxAPI
) -> None:
    status = metrics_api.nodes("pve1").lxc
    # permission (403) before the proxy (500/595) before validation (400)
    assert failure(nobody_api.nodes("nosuch").lxc(105).status.current.get, bogus=1) == (
        403,
        "Permission check failed (/vms/105, VM.Audit)",
        None,
    )
    assert failure(metrics_api.nodes("nosuch").lxc(105).status.current.get, bogus=1) == (
        500,
        "hostname lookup 'nosuch' failed - failed to get address info for: nosuch: "
        "Name or service not known",
        None,
    )
    assert failure(status(105).status.current.get, bogus=1) == bad_params({"bogus": UNDECLARED})
    assert failure(status("abc").status.current.get) == bad_params(
        {"vmid": "type check ('integer') failed - got 'abc'"}
    )
    assert failure(status(1000000000).status.current.get) == bad_params(
        {"vmid": "invalid format - value does not look like a valid VM ID\n"}
    )
    # a CT on another node, or none at all: the config is looked up on the node asked
    assert failure(status(999).status.current.get) == (
        500,
        "Configuration file 'nodes/pve1/lxc/999.conf' does not exist",
        None,
    )
    assert failure(metrics_api.nodes("pve2").lxc(105).status.current.get)[:2] == (
        500,
        "Configuration file 'nodes/pve2/lxc/105.conf' does not exist",
    )


def test_status_current_running_field_by_field(
    metrics_api: ProxmoxAPI, vmuser_api: ProxmoxAPI
) -> None:
    cur = metrics_api.nodes("pve1").lxc(105).status.current.get()
    assert_shape(cur, STATUS_CURRENT)
    assert (cur["vmid"], cur["type"], cur["name"], cur["status"]) == (
        105,
        "lxc",
        "ct105",
        "running",
    )
    assert cur["ha"] == {"managed": 0}
    assert cur["cpus"] == 2 and isinstance(cur["cpu"], float) and 0 < cur["cpu"] < 1
    assert cur["maxmem"] == 1024 * MIB and 0 < cur["mem"] < cur["maxmem"]
    assert cur["maxswap"] == 512 * MIB and 0 <= cur["swap"] <= cur["maxswap"]
    assert cur["maxdisk"] == 8 * GIB and 0 < cur["disk"] < cur["maxdisk"]
    assert cur["uptime"] >= 2 * 3600 and cur["pid"] > 0
    assert all(cur[k] > 0 for k in ("netin", "netout", "diskread", "diskwrite"))
    assert cur["tags"] == "metrics;web" and "lock" not in cur and "template" not in cur
    assert "memhost" not in cur  # the host's view is in the RRD and /cluster/resources
    # VM.Audit is all it needs
    assert vmuser_api.nodes("pve1").lxc(105).status.current.get()["maxmem"] == cur["maxmem"]


def test_status_current_stopped_field_by_field(metrics_api: ProxmoxAPI) -> None:
    cur = metrics_api.nodes("pve1").lxc(106).status.current.get()
    assert_shape(cur, STATUS_CURRENT)
    assert (cur["vmid"], cur["status"], cur["ha"]) == (106, "stopped", {"managed": 0})
    zero = ("cpu", "mem", "swap", "disk", "uptime", "netin", "netout", "diskread", "diskwrite")
    assert [cur[k] for k in zero] == [0] * len(zero)
    assert all(cur[k] == 0 for k in cur if k.startswith("pressure"))
    assert (cur["maxmem"], cur["maxswap"], cur["maxdisk"]) == (1024 * MIB, 512 * MIB, 8 * GIB)
    assert "pid" not in cur
    # vmstatus reads `swap // 0`: a config without swap has none (create writes 512)
    ct = metrics_api.nodes("pve1").lxc(106)
    ct.config.put(delete="swap")
    try:
        assert ct.status.current.get()["maxswap"] == 0
    finally:
        ct.config.put(swap=512)


# -- GET /nodes/{node}/status ---------------------------------------------------------


def test_node_status_errors_in_proxmoxs_order(
    metrics_api: ProxmoxAPI, metrics_admin: SimAdmin, vmuser_api: ProxmoxAPI, nobody_api: ProxmoxAPI
) -> None:
    for who in (vmuser_api, nobody_api):  # VM.Audit is not Sys.Audit
        assert failure(who.nodes("pve1").status.get, bogus=1) == (
            403,
            "Permission check failed (/nodes/pve1, Sys.Audit)",
            None,
        )
    assert failure(metrics_api.nodes("nosuch").status.get, bogus=1)[:2] == (
        500,
        "hostname lookup 'nosuch' failed - failed to get address info for: nosuch: "
        "Name or service not known",
    )
    assert failure(metrics_api.nodes("pve1").status.get, bogus=1) == bad_params(
        {"bogus": UNDECLARED}
    )
    metrics_admin.set_node_offline("pve2")
    try:
        assert failure(metrics_api.nodes("pve2").status.get, bogus=1) == (
            595,
            "Connection refused",
            None,
        )
    finally:
        metrics_admin.set_node_offline("pve2", offline=False)


def test_node_status_field_by_field(metrics_api: ProxmoxAPI) -> None:
    st = metrics_api.nodes("pve1").status.get()
    assert_shape(st, NODE_STATUS)
    assert 0 < st["cpu"] < 1 and 0 <= st["wait"] < 1
    assert len(st["loadavg"]) == 3 and all(isinstance(x, str) for x in st["loadavg"])
    assert set(st["cpuinfo"]) >= {"cores", "cpus", "model", "sockets"}
    assert all(isinstance(st["cpuinfo"][k], int) for k in ("cores", "cpus", "sockets"))
    assert st["cpuinfo"]["cpus"] == 16 and isinstance(st["cpuinfo"]["model"], str)
    for key, fields in (
        ("memory", {"available", "free", "total", "used"}),
        ("rootfs", {"avail", "free", "total", "used"}),
        ("swap", {"free", "total", "used"}),
        ("current-kernel", {"machine", "release", "sysname", "version"}),
    ):
        assert set(st[key]) == fields, key
    assert all(isinstance(v, int) for k in ("memory", "rootfs", "swap") for v in st[k].values())
    memory = st["memory"]
    assert memory["total"] == 64 * GIB and memory["used"] + memory["free"] == memory["total"]
    assert st["rootfs"]["used"] + st["rootfs"]["free"] == st["rootfs"]["total"]
    assert st["boot-info"]["mode"] in ("efi", "legacy-bios")
    assert st["boot-info"].get("secureboot", 0) in (0, 1)
    assert st["pveversion"].startswith("pve-manager/9.2")
    assert st["kversion"].startswith("Linux " + st["current-kernel"]["release"])
