"""Tickets, CSRF, renewal, API tokens, 401/403 texts and the 401 delay."""

from __future__ import annotations

import time
import urllib.parse

import pytest
import requests
from proxmoxer import AuthenticationError, ProxmoxAPI, ResourceException

from pvesim.testing import SimAdmin, SimulatorThread
from tests.functional.pvesim.helpers import ROOT_PASSWORD, api_url, create_ct


def session(sim: SimulatorThread) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.verify = str(sim.ca_path)
    return s


def login(sim: SimulatorThread, **data: str) -> dict:
    resp = session(sim).post(api_url(sim, "/access/ticket"), data=data)
    assert resp.status_code == 200, resp.text
    return dict(resp.json()["data"])


def test_ticket_login_form_and_json(pve_sim: SimulatorThread) -> None:
    data = login(pve_sim, username="root@pam", password=ROOT_PASSWORD)
    assert data["username"] == "root@pam"
    assert data["ticket"].startswith("PVE:root@pam:") and "::" in data["ticket"]
    assert data["CSRFPreventionToken"].split(":")[0] == data["ticket"].split(":")[2]
    assert data["clustername"] == "pvesim"
    assert data["cap"]["vms"]["VM.Allocate"] == 1
    resp = session(pve_sim).post(
        api_url(pve_sim, "/access/ticket"),
        json={"username": "root", "realm": "pam", "password": ROOT_PASSWORD},
    )
    assert resp.status_code == 200 and resp.json()["data"]["username"] == "root@pam"
    assert "Set-Cookie" not in resp.headers


def test_wrong_password(pve_sim: SimulatorThread) -> None:
    resp = session(pve_sim).post(
        api_url(pve_sim, "/access/ticket"), data={"username": "root@pam", "password": "x"}
    )
    assert (resp.status_code, resp.reason) == (401, "authentication failure")
    assert resp.json() == {"data": None, "message": "authentication failure\n"}
    with pytest.raises(AuthenticationError, match="code: 401"):
        ProxmoxAPI(
            pve_sim.host,
            port=pve_sim.port,
            user="root@pam",
            password="bad",
            verify_ssl=str(pve_sim.ca_path),
        )
    resp = session(pve_sim).post(
        api_url(pve_sim, "/access/ticket"), data={"username": "nobody@pve", "password": "x"}
    )
    assert resp.reason == "authentication failure"


def test_cookie_and_header_ticket(pve_sim: SimulatorThread) -> None:
    ticket = login(pve_sim, username="root@pam", password=ROOT_PASSWORD)["ticket"]
    s = session(pve_sim)
    resp = s.get(
        api_url(pve_sim, "/nodes"),
        headers={"Cookie": f"PVEAuthCookie={urllib.parse.quote(ticket)}"},
    )
    assert resp.status_code == 200
    resp = s.get(api_url(pve_sim, "/nodes"), headers={"Authorization": f"PVEAuthCookie={ticket}"})
    assert resp.status_code == 200


def test_no_ticket_and_bad_ticket(pve_sim: SimulatorThread) -> None:
    s = session(pve_sim)
    resp = s.get(api_url(pve_sim, "/nodes"))
    assert (resp.status_code, resp.reason, resp.content) == (401, "No ticket", b"")
    resp = s.get(
        api_url(pve_sim, "/nodes"), cookies={"PVEAuthCookie": "PVE:root@pam:6759A3F0::Zm9v"}
    )
    assert (resp.status_code, resp.reason, resp.content) == (401, "Authentication failed!", b"")
    # domains and the ticket call need no auth
    assert s.get(api_url(pve_sim, "/access/domains")).status_code == 200
    # auth happens before the 501 for unknown paths
    assert s.get(api_url(pve_sim, "/no/such/path")).reason == "No ticket"


def test_csrf_required_for_non_get(pve_sim: SimulatorThread, pve: ProxmoxAPI) -> None:
    create_ct(pve, 105)
    data = login(pve_sim, username="root@pam", password=ROOT_PASSWORD)
    s = session(pve_sim)
    s.cookies.set("PVEAuthCookie", data["ticket"])
    url = api_url(pve_sim, "/nodes/pve1/lxc/105/config")
    resp = s.put(url, data={"memory": "600"})
    assert (resp.status_code, resp.reason, resp.content) == (
        401,
        "Permission denied - invalid csrf token",
        b"",
    )
    resp = s.put(url, data={"memory": "600"}, headers={"CSRFPreventionToken": "6759A3F0:bogus"})
    assert resp.reason == "Permission denied - invalid csrf token"
    resp = s.put(
        url, data={"memory": "600"}, headers={"CSRFPreventionToken": data["CSRFPreventionToken"]}
    )
    assert resp.status_code == 200
    assert s.get(url).status_code == 200  # GET needs no CSRF token


def test_ticket_renewal(
    pve_sim: SimulatorThread, pve_ticket: ProxmoxAPI, sim_admin: SimAdmin
) -> None:
    old = pve_ticket.get_tokens()[0]
    sim_admin.advance_clock(3601)
    auth = pve_ticket._backend.auth
    auth.birth_time -= 3601  # make proxmoxer renew on the next call, as it does hourly
    pve_ticket.nodes.get()
    new = pve_ticket.get_tokens()[0]
    assert new != old and new.startswith("PVE:root@pam:")
    # a renewal with a still-valid ticket works directly, too
    sim_admin.advance_clock(5)
    renewed = login(pve_sim, username="root@pam", password=new)
    assert renewed["ticket"] != new
    # an expired ticket is refused: 2 h lifetime
    sim_admin.advance_clock(7300)
    resp = session(pve_sim).post(
        api_url(pve_sim, "/access/ticket"), data={"username": "root@pam", "password": new}
    )
    assert resp.status_code == 401
    resp = session(pve_sim).get(api_url(pve_sim, "/nodes"), cookies={"PVEAuthCookie": new})
    assert resp.reason == "Authentication failed!"


def test_ticket_of_other_user_is_not_a_password(pve_sim: SimulatorThread) -> None:
    with pve_sim.state.lock:
        from pvesim.access import User

        pve_sim.state.access.users["bob@pve"] = User("bob@pve", password="bobpass1")
    bob = login(pve_sim, username="bob@pve", password="bobpass1")["ticket"]
    resp = session(pve_sim).post(
        api_url(pve_sim, "/access/ticket"), data={"username": "alice@pve", "password": bob}
    )
    assert resp.status_code == 401
    # root@pam's ticket may create tickets for others (Proxmox's rule)
    root = login(pve_sim, username="root@pam", password=ROOT_PASSWORD)["ticket"]
    assert login(pve_sim, username="bob@pve", password=root)["username"] == "bob@pve"


def test_api_token_variants(pve_sim: SimulatorThread) -> None:
    s = session(pve_sim)
    url = api_url(pve_sim, "/version")
    tid, secret = pve_sim.token_id, pve_sim.token_secret
    assert s.get(url, headers={"Authorization": f"PVEAPIToken={tid}={secret}"}).status_code == 200
    assert s.get(url, headers={"Authorization": f"PVEAPIToken {tid}={secret}"}).status_code == 200
    for bad in (f"PVEAPIToken={tid}=wrong", f"PVEAPIToken={tid}", "PVEAPIToken=nobody@pve!x=y"):
        resp = s.get(url, headers={"Authorization": bad})
        assert (resp.status_code, resp.reason, resp.content) == (401, "Authentication failed!", b"")


def test_token_needs_no_csrf_but_cannot_get_ticket(
    pve_sim: SimulatorThread, http: requests.Session
) -> None:
    resp = http.post(
        api_url(pve_sim, "/access/ticket"), data={"username": "root@pam", "password": ROOT_PASSWORD}
    )
    assert resp.status_code == 403
    assert (
        resp.reason
        == "Permission check failed (URI '/access/ticket' not available with API token, need proper ticket."
    )
    assert resp.json()["message"] == (
        "Permission check failed (URI '/access/ticket' not available with API token, need proper ticket.\n)\n"
    )


def test_401_is_delayed(pve_sim: SimulatorThread, sim_admin: SimAdmin) -> None:
    sim_admin.set_auth_delay(0.4)
    s = session(pve_sim)
    start = time.monotonic()
    assert s.get(api_url(pve_sim, "/nodes")).status_code == 401
    assert time.monotonic() - start >= 0.4
    start = time.monotonic()
    resp = s.post(
        api_url(pve_sim, "/access/ticket"), data={"username": "root@pam", "password": "nope"}
    )
    assert resp.status_code == 401 and time.monotonic() - start >= 0.4
    start = time.monotonic()
    assert s.get(api_url(pve_sim, "/access/domains")).status_code == 200
    assert time.monotonic() - start < 0.4


def test_restricted_token_gets_403(
    pve_sim: SimulatorThread, pve: ProxmoxAPI, sim_admin: SimAdmin
) -> None:
    create_ct(pve, 105)
    sim_admin.restrict(pve_sim.token_id, "PVEAuditor")
    with pytest.raises(ResourceException) as exc:
        pve.nodes("pve1").lxc(105).delete()
    assert (exc.value.status_code, exc.value.content) == (
        403,
        "Permission check failed (/vms/105, VM.Allocate)",
    )
    with pytest.raises(ResourceException) as exc:
        pve.nodes("pve1").lxc.post(
            vmid=106, ostemplate="local:vztmpl/x.tar.zst", rootfs="local-lvm:4"
        )
    assert (exc.value.status_code, exc.value.content) == (403, "Permission check failed")
    with pytest.raises(ResourceException) as exc:
        pve.nodes("pve1").lxc(105).config.put(memory=256)
    assert exc.value.content == (
        "Permission check failed (/vms/105, "
        "VM.Config.Disk|VM.Config.CPU|VM.Config.Memory|VM.Config.Network|VM.Config.Options)"
    )
    # an auditor can still read
    assert pve.nodes("pve1").lxc(105).config.get()["hostname"] == "ct105"
    assert [r["vmid"] for r in pve.cluster.resources.get(type="vm")] == [105]


def test_privsep_token_role_per_vm(tmp_path, pve_keys) -> None:  # type: ignore[no-untyped-def]
    from tests.functional.pvesim.helpers import seed_keys

    seed_keys(pve_keys, tmp_path)
    tokens = {
        "admin@pve!full": "11111111-1111-1111-1111-111111111111",
        "alice@pve!portal": "22222222-2222-2222-2222-222222222222:PVEVMUser",
    }
    with SimulatorThread(tmp_path, tokens=tokens, task_seconds=0.02) as sim:
        admin = sim.proxmox()
        alice = ProxmoxAPI(
            sim.host,
            port=sim.port,
            user="alice@pve",
            token_name="portal",
            token_value="22222222-2222-2222-2222-222222222222",
            verify_ssl=str(sim.ca_path),
        )
        create_ct(admin, 300)
        create_ct(admin, 301)
        # a PVEVMUser token may power-manage but not allocate
        assert alice.nodes("pve1").lxc(300).status.start.post().startswith("UPID:pve1:")
        with pytest.raises(ResourceException) as exc:
            alice.nodes("pve1").lxc(300).delete()
        assert exc.value.content == "Permission check failed (/vms/300, VM.Allocate)"
        acl = {(a["path"], a["type"], a["ugid"], a["roleid"]) for a in admin.access.acl.get()}
        assert ("/", "token", "alice@pve!portal", "PVEVMUser") in acl


def test_revoked_token(pve_sim: SimulatorThread, pve: ProxmoxAPI, sim_admin: SimAdmin) -> None:
    pve.version.get()
    sim_admin.revoke_token(pve_sim.token_id)
    with pytest.raises(ResourceException) as exc:
        pve.version.get()
    assert (exc.value.status_code, exc.value.content) == (401, "Authentication failed!")
    assert exc.value.errors == {"errors": b""}


def test_get_ticket_and_parallel_requests(pve_sim: SimulatorThread, pve: ProxmoxAPI) -> None:
    from concurrent.futures import ThreadPoolExecutor

    assert session(pve_sim).get(api_url(pve_sim, "/access/ticket")).json() == {"data": None}
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: pve.cluster.resources.get(type="node"), range(24)))
    assert all(len(r) == 2 for r in results)
