"""ACLs, realms, realm sync and users."""

from __future__ import annotations

import pytest
from proxmoxer import ProxmoxAPI, ResourceException

from pvesim.testing import SimAdmin
from tests.functional.pvesim.helpers import create_ct, wait_task


def test_domains(pve: ProxmoxAPI) -> None:
    realms = {d["realm"]: d["type"] for d in pve.access.domains.get()}
    assert realms == {"pam": "pam", "pve": "pve", "ldap": "ldap"}


def test_acl_put_and_get(pve: ProxmoxAPI) -> None:
    create_ct(pve, 105)
    assert (
        pve.access.acl.put(path="/vms/105", roles="PVEVMUser", users="root@pam", propagate=0)
        is None
    )
    assert (
        pve.access.acl.put(path="/vms/105", roles="PVEAuditor", tokens="portal@pve!portal") is None
    )
    acl = [a for a in pve.access.acl.get() if a["path"] == "/vms/105"]
    assert acl == [
        {
            "path": "/vms/105",
            "type": "token",
            "ugid": "portal@pve!portal",
            "roleid": "PVEAuditor",
            "propagate": 1,
        },
        {
            "path": "/vms/105",
            "type": "user",
            "ugid": "root@pam",
            "roleid": "PVEVMUser",
            "propagate": 0,
        },
    ]
    pve.access.acl.put(path="/vms/105", roles="PVEVMUser", users="root@pam", delete=1)
    assert [a["ugid"] for a in pve.access.acl.get() if a["path"] == "/vms/105"] == [
        "portal@pve!portal"
    ]


@pytest.mark.parametrize(
    ("params", "status", "content", "errors"),
    [
        (
            {"path": "/vms/105", "roles": "PVEVMUser"},
            400,
            "Parameter verification failed.",
            {
                "users": "either 'users', 'groups' or 'tokens' is required.",
                "groups": "either 'users', 'groups' or 'tokens' is required.",
                "tokens": "either 'users', 'groups' or 'tokens' is required.",
            },
        ),
        (
            {"path": "/foo/bar", "roles": "PVEVMUser", "users": "root@pam"},
            400,
            "Parameter verification failed.",
            {"path": "invalid ACL path '/foo/bar'"},
        ),
        (
            {"path": "/", "roles": "Bogus", "users": "root@pam"},
            500,
            "ACL update failed: role 'Bogus' does not exist",
            None,
        ),
        (
            {"path": "/", "roles": "PVEVMUser", "users": "alice@ldap"},
            500,
            "ACL update failed: user 'alice@ldap' does not exist",
            None,
        ),
        (
            {"path": "/", "roles": "PVEVMUser", "groups": "devs"},
            500,
            "ACL update failed: group 'devs' does not exist",
            None,
        ),
        (
            {"path": "/", "roles": "PVEVMUser", "tokens": "portal@pve!other"},
            500,
            "ACL update failed: no such token 'other' for user 'portal@pve'",
            None,
        ),
        (
            {"path": "/", "roles": "PVEVMUser", "users": "not-a-user"},
            400,
            "Parameter verification failed.",
            {"users": "invalid format - value 'not-a-user' does not look like a valid user name\n"},
        ),
    ],
)
def test_acl_errors(
    pve: ProxmoxAPI, params: dict, status: int, content: str, errors: dict | None
) -> None:
    with pytest.raises(ResourceException) as exc:
        pve.access.acl.put(**params)
    assert (exc.value.status_code, exc.value.content) == (status, content)
    if errors is not None:
        assert exc.value.errors == errors


def test_realm_sync_makes_ldap_users_known(pve: ProxmoxAPI, sim_admin: SimAdmin) -> None:
    create_ct(pve, 105)
    sim_admin.set_directory_users("ldap", ["alice", "bob"], groups={"devs": ["alice"]})
    upid = pve.access.domains("ldap").sync.post(scope="both", **{"enable-new": 1})
    assert upid.split(":")[5:7] == ["auth-realm-sync", "ldap"]
    status = wait_task(pve, upid)
    assert status["exitstatus"] == "OK"
    log = [line["t"] for line in pve.nodes("pve1").tasks(upid).log.get()]
    assert "adding user 'alice@ldap'" in log and "adding group 'devs-ldap'" in log
    users = {u["userid"]: u for u in pve.access.users.get()}
    assert (
        users["alice@ldap"]["realm-type"] == "ldap" and users["alice@ldap"]["groups"] == "devs-ldap"
    )
    pve.access.acl.put(path="/vms/105", roles="PVEVMUser", users="alice@ldap")
    pve.access.acl.put(path="/vms/105", roles="PVEAuditor", groups="devs-ldap")
    assert {a["ugid"] for a in pve.access.acl.get() if a["path"] == "/vms/105"} == {
        "alice@ldap",
        "devs-ldap",
    }
    # remove-vanished=entry;acl drops users gone from the directory, and their ACLs
    sim_admin.set_directory_users("ldap", ["bob"])
    wait_task(
        pve, pve.access.domains("ldap").sync.post(scope="users", **{"remove-vanished": "acl;entry"})
    )
    assert "alice@ldap" not in {u["userid"] for u in pve.access.users.get()}
    assert {a["ugid"] for a in pve.access.acl.get() if a["path"] == "/vms/105"} == {"devs-ldap"}


def test_realm_sync_dry_run(pve: ProxmoxAPI, sim_admin: SimAdmin) -> None:
    sim_admin.set_directory_users("ldap", ["carol"])
    upid = pve.access.domains("ldap").sync.post(scope="users", **{"dry-run": 1})
    assert ":auth-realm-sync-test:ldap:" in upid
    wait_task(pve, upid)
    assert "carol@ldap" not in {u["userid"] for u in pve.access.users.get()}


def test_realm_sync_errors(pve: ProxmoxAPI) -> None:
    with pytest.raises(ResourceException) as exc:
        pve.access.domains("pam").sync.post(scope="users")
    assert (exc.value.status_code, exc.value.content) == (
        500,
        "Cannot sync realm type 'pam'! Only LDAP/AD realms can be synced.",
    )
    with pytest.raises(ResourceException) as exc:
        pve.access.domains("nosuch").sync.post(scope="users")
    assert exc.value.status_code == 400 and exc.value.errors == {"realm": "Realm does not exist."}
    with pytest.raises(ResourceException) as exc:
        pve.access.domains("ldap").sync.post(scope="everything")
    assert exc.value.errors == {
        "scope": "value 'everything' does not have a value in the enumeration 'users, groups, both'"
    }


def test_users_list(pve: ProxmoxAPI) -> None:
    users = {u["userid"]: u for u in pve.access.users.get(full=1)}
    assert users["root@pam"] == {
        "userid": "root@pam",
        "enable": 1,
        "expire": 0,
        "realm-type": "pam",
    }
    assert users["portal@pve"]["tokens"] == [{"tokenid": "portal", "expire": 0, "privsep": 1}]


def test_acl_grants_take_effect(
    pve: ProxmoxAPI, pve_ticket: ProxmoxAPI, sim_admin: SimAdmin
) -> None:
    create_ct(pve, 105)
    create_ct(pve, 106)
    sim_admin.restrict("portal@pve!portal")
    with pytest.raises(ResourceException) as exc:
        pve.nodes("pve1").lxc(105).config.get()
    assert exc.value.content == "Permission check failed (/vms/105, VM.Audit)"
    assert pve.cluster.resources.get(type="vm") == []
    pve_ticket.access.acl.put(path="/vms/105", roles="PVEVMAdmin", tokens="portal@pve!portal")
    assert pve.nodes("pve1").lxc(105).config.get()["hostname"] == "ct105"
    assert [r["vmid"] for r in pve.cluster.resources.get(type="vm")] == [105]
    with pytest.raises(ResourceException):
        pve.nodes("pve1").lxc(106).config.get()
    # NoAccess below wins
    pve_ticket.access.acl.put(path="/vms", roles="PVEAuditor", tokens="portal@pve!portal")
    assert len(pve.cluster.resources.get(type="vm")) == 2
    pve_ticket.access.acl.put(path="/vms/106", roles="NoAccess", tokens="portal@pve!portal")
    assert [r["vmid"] for r in pve.cluster.resources.get(type="vm")] == [105]


def test_ticket_cap_reflects_acl(pve_sim, pve_ticket: ProxmoxAPI, sim_admin: SimAdmin) -> None:  # type: ignore[no-untyped-def]
    import requests

    sim_admin.set_directory_users("ldap", ["dave"])
    wait_task(pve_ticket, pve_ticket.access.domains("ldap").sync.post(scope="users"))
    with pve_sim.state.lock:
        pve_sim.state.access.users["dave@ldap"].password = "davepass"
    pve_ticket.access.acl.put(path="/vms", roles="PVEAuditor", users="dave@ldap")
    s = requests.Session()
    s.trust_env = False
    resp = s.post(
        f"{pve_sim.url}/api2/json/access/ticket",
        data={"username": "dave", "realm": "ldap", "password": "davepass"},
        verify=str(pve_sim.ca_path),
    )
    data = resp.json()["data"]
    assert data["username"] == "dave@ldap" and data["cap"]["vms"] == {"VM.Audit": 1}
    assert "clustername" not in data
