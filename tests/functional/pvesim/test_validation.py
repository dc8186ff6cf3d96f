"""Parameter validation in Proxmox's order and wording."""

from __future__ import annotations

from typing import Any

import pytest
from proxmoxer import ProxmoxAPI, ResourceException

from tests.functional.pvesim.helpers import TEMPLATE, create_ct


def errors_of(call: Any, **params: Any) -> dict[str, str]:
    with pytest.raises(ResourceException) as exc:
        call(**params)
    assert exc.value.status_code == 400, exc.value
    assert exc.value.content == "Parameter verification failed."
    return dict(exc.value.errors)


def test_missing_and_unknown_together(pve: ProxmoxAPI) -> None:
    errs = errors_of(pve.nodes("pve1").lxc.post, hostname="x", bogus="1")
    assert errs == {
        "vmid": "property is missing and it is not optional",
        "ostemplate": "property is missing and it is not optional",
        "bogus": "property is not defined in schema and the schema does not allow additional properties",
    }


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        # the pve-vmid format is checked before minimum/maximum
        ({"vmid": "99"}, {"vmid": "invalid format - value does not look like a valid VM ID\n"}),
        (
            {"vmid": "1000000000"},
            {"vmid": "invalid format - value does not look like a valid VM ID\n"},
        ),
        ({"swap": "-1"}, {"swap": "value must have a minimum value of 0"}),
        ({"tty": "7"}, {"tty": "value must have a maximum value of 6"}),
        ({"vmid": "0105"}, {"vmid": "invalid format - value does not look like a valid VM ID\n"}),
        ({"memory": "8"}, {"memory": "value must have a minimum value of 16"}),
        ({"cores": "x"}, {"cores": "type check ('integer') failed - got 'x'"}),
        ({"cpulimit": "1.5.2"}, {"cpulimit": "type check ('number') failed - got '1.5.2'"}),
        ({"password": "abc"}, {"password": "value must be at least 5 characters long"}),
        (
            {"hostname": "bad_name"},
            {"hostname": "invalid format - value does not look like a valid DNS name\n"},
        ),
        ({"hostname": "a" * 256}, {"hostname": "value may only be 255 characters long"}),
        (
            {"ostype": "windows"},
            {
                "ostype": "value 'windows' does not have a value in the enumeration "
                "'debian, devuan, ubuntu, centos, fedora, opensuse, archlinux, alpine, gentoo, nixos, unmanaged'"
            },
        ),
        ({"tags": "ok;bad tag!"}, {"tags": "invalid format - invalid characters in tag\n"}),
        (
            {"net0": "name=eth0,bridge=vmbr0,hwaddr=01:00:00:00:00:01"},
            {
                "net0": "invalid format - format error\n"
                "net0.hwaddr: invalid format - value does not look like a valid unicast MAC address\n\n"
            },
        ),
        (
            {"net0": "name=eth0,speed=10"},
            {"net0": "invalid format - invalid key in comma-separated list property: speed\n"},
        ),
        (
            {"net0": "name=eth0,tag=5000"},
            {
                "net0": "invalid format - format error\nnet0.tag: value must have a maximum value of 4094\n"
            },
        ),
        (
            {"net0": "name=eth0,ip=10.0.0.5"},
            {
                "net0": "invalid format - format error\n"
                "net0.ip: invalid format - value does not look like a valid ipv4 network configuration\n\n"
            },
        ),
        (
            {"rootfs": "local-lvm:8,size=huge"},
            {
                "rootfs": "invalid format - format error\n"
                "rootfs.size: invalid format - value does not look like a valid disk size: huge\n\n"
            },
        ),
        (
            {"features": "nesting=maybe"},
            {
                "features": "invalid format - format error\nfeatures.nesting: type check ('boolean') failed - got 'maybe'\n"
            },
        ),
        (
            {"net32": "name=eth0"},
            {
                "net32": "property is not defined in schema and the schema does not allow additional properties"
            },
        ),
        ({"unique": "1"}, {"restore": "missing property - 'unique' requires this property"}),
    ],
)
def test_create_parameter_errors(
    pve: ProxmoxAPI, params: dict[str, str], expected: dict[str, str]
) -> None:
    base = {"vmid": "150", "ostemplate": TEMPLATE, "rootfs": "local-lvm:4"}
    assert errors_of(pve.nodes("pve1").lxc.post, **{**base, **params}) == expected


def test_first_failure_per_parameter_only(pve: ProxmoxAPI) -> None:
    # "abc" fails the type check; the minimum is not also reported
    errs = errors_of(pve.nodes("pve1").lxc.post, vmid="abc", ostemplate=TEMPLATE, memory="abc")
    assert errs == {
        "vmid": "type check ('integer') failed - got 'abc'",
        "memory": "type check ('integer') failed - got 'abc'",
    }


def test_cluster_resources_type(pve: ProxmoxAPI) -> None:
    errs = errors_of(pve.cluster.resources.get, type="lxc")
    assert errs == {
        "type": "value 'lxc' does not have a value in the enumeration 'vm, storage, node, sdn'"
    }


def test_nextid(pve: ProxmoxAPI, sim_admin: Any) -> None:
    assert pve.cluster.nextid.get() == "100"
    sim_admin.create_foreign_guest("pve1", 100, type="qemu")
    create_ct(pve, 101)
    assert pve.cluster.nextid.get() == "102"
    assert pve.cluster.nextid.get(vmid=500) == "500"
    with pytest.raises(ResourceException) as exc:
        pve.cluster.nextid.get(vmid=101)
    assert exc.value.status_code == 400 and exc.value.errors == {"vmid": "VM 101 already exists"}
    assert errors_of(pve.cluster.nextid.get, vmid="42") == {
        "vmid": "invalid format - value does not look like a valid VM ID\n"
    }


def test_put_config_delete_checks(pve: ProxmoxAPI) -> None:
    create_ct(pve, 105)
    ct = pve.nodes("pve1").lxc(105)
    with pytest.raises(ResourceException) as exc:
        ct.config.put(delete="nosuch")
    assert exc.value.errors == {"delete": "unknown option 'nosuch'"}
    with pytest.raises(ResourceException) as exc:
        ct.config.put(delete="memory", memory=512)
    assert exc.value.errors == {
        "delete": "you can't use '-memory' and -delete memory' at the same time"
    }
    with pytest.raises(ResourceException) as exc:
        ct.config.put(digest="abc")
    assert (exc.value.status_code, exc.value.content) == (500, "no options specified")
    with pytest.raises(ResourceException) as exc:
        ct.config.put(unprivileged=0)
    assert exc.value.content == "unable to modify read-only option: 'unprivileged'"
    assert errors_of(ct.config.put, digest="x" * 41) == {
        "digest": "value may only be 40 characters long"
    }


def test_tags_and_description_storage(pve: ProxmoxAPI) -> None:
    create_ct(pve, 105, tags="Zeta;alpha,beta alpha")
    ct = pve.nodes("pve1").lxc(105)
    assert ct.config.get()["tags"] == "alpha;beta;Zeta"
    ct.config.put(description="line one\nline: two\n")
    assert ct.config.get()["description"] == "line one\nline: two\n"
    ct.config.put(tags="")
    assert "tags" not in ct.config.get()


def test_net_normalised_with_hwaddr(pve: ProxmoxAPI) -> None:
    create_ct(
        pve,
        105,
        net0="bridge=vmbr0,name=eth0,ip=10.15.9.9/16,gw=10.15.0.1,firewall=1,hwaddr=bc:24:11:00:00:01",
    )
    net0 = pve.nodes("pve1").lxc(105).config.get()["net0"]
    assert (
        net0
        == "name=eth0,bridge=vmbr0,firewall=1,gw=10.15.0.1,hwaddr=bc:24:11:00:00:01,ip=10.15.9.9/16,type=veth"
    )
