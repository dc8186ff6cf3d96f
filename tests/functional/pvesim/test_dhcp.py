"""DHCP emulation: reservations from a dnsmasq dhcp-hostsfile, re-read on change.

The case through a simulator; the parser and the allocation on their own are in
tests/unit/pvesim/test_dhcp.py.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from proxmoxer import ProxmoxAPI

from pvesim.testing import SimulatorThread
from tests.functional.pvesim.helpers import create_ct, seed_keys, wait_task
from tests.unit.pvesim.test_dhcp import MAC1, MAC2


def inet_of(api: ProxmoxAPI, vmid: int) -> str | None:
    ifaces = api.nodes("pve1").lxc(vmid).interfaces.get()
    if ifaces is None:
        return None
    eth0 = next(i for i in ifaces if i["name"] == "eth0")
    return eth0.get("inet")


def test_interfaces_follow_the_hosts_file(tmp_path: Path, pve_keys: Path) -> None:
    hosts = tmp_path / "dhcp-hosts"
    hosts.write_text(f"{MAC1},10.15.3.7,web1\n")
    seed_keys(pve_keys, tmp_path / "sim")
    with SimulatorThread(tmp_path / "sim", dhcp_hosts=hosts, task_seconds=0.02) as sim:
        api = sim.proxmox()
        create_ct(api, 105, net0=f"name=eth0,bridge=vmbr0,hwaddr={MAC1},ip=dhcp", start=1)
        create_ct(api, 106, net0=f"name=eth0,bridge=vmbr0,hwaddr={MAC2},ip=dhcp", start=1)
        create_ct(api, 107, net0="name=eth0,bridge=vmbr0,ip=10.15.9.9/16,gw=10.15.0.1", start=1)
        create_ct(api, 108, net0="name=eth0,bridge=vmbr0,ip=dhcp")
        assert inet_of(api, 105) == "10.15.3.7/16"
        assert inet_of(api, 106) == "10.15.0.10/16"  # no reservation: first free address of vmbr0
        assert inet_of(api, 107) == "10.15.9.9/16"
        assert inet_of(api, 108) is None  # stopped CTs report null

        ifaces = api.nodes("pve1").lxc(105).interfaces.get()
        assert [i["name"] for i in ifaces] == ["lo", "eth0"]
        eth0 = ifaces[1]
        assert eth0["hwaddr"] == MAC1.lower() == eth0["hardware-address"]
        assert {"ip-address": "10.15.3.7", "ip-address-type": "inet", "prefix": 16} in eth0[
            "ip-addresses"
        ]
        assert eth0["inet6"] == "fe80::be24:11ff:feaa:1/64"  # link-local from the MAC (EUI-64)

        # the file is re-read when it changes (mtime/size)
        hosts.write_text(f"{MAC1},10.15.3.70,web1\n{MAC2},10.15.3.80,db\n")
        st = hosts.stat()
        os.utime(hosts, (st.st_atime, st.st_mtime + 2))
        time.sleep(0.01)
        assert inet_of(api, 105) == "10.15.3.70/16"
        assert inet_of(api, 106) == "10.15.3.80/16"

        wait_task(api, api.nodes("pve1").lxc(105).status.stop.post())
        assert api.nodes("pve1").lxc(105).interfaces.get() is None
