"""The wire protocol: reason phrases, error bodies, 501s, parameter merging."""

from __future__ import annotations

import json
import socket
import ssl

import pytest
import requests
from proxmoxer import ProxmoxAPI, ResourceException

from pvesim.testing import SimulatorThread
from tests.functional.pvesim.helpers import api_url, create_ct


def raw_request(sim: SimulatorThread, request: bytes) -> bytes:
    ctx = ssl.create_default_context(cafile=str(sim.ca_path))
    with (
        socket.create_connection((sim.host, sim.port), timeout=5) as sock,
        ctx.wrap_socket(sock, server_hostname=sim.host) as tls,
    ):
        tls.sendall(request)
        chunks = []
        while True:
            data = tls.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


def test_reason_phrase_is_the_error_text(pve_sim: SimulatorThread, pve: ProxmoxAPI) -> None:
    create_ct(pve, 105)
    auth = f"PVEAPIToken={pve_sim.token_id}={pve_sim.token_secret}"
    body = "vmid=105&ostemplate=local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst&rootfs=local-lvm:8"
    raw = raw_request(
        pve_sim,
        (
            f"POST /api2/json/nodes/pve1/lxc HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n\r\n{body}"
        ).encode(),
    )
    head, _, payload = raw.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0] == b"HTTP/1.1 500 CT 105 already exists on node 'pve1'"
    assert json.loads(payload) == {
        "data": None,
        "message": "CT 105 already exists on node 'pve1'\n",
    }
    assert b"Server: pve-api-daemon/3.0" in head


def test_only_first_line_in_status_line(pve_sim: SimulatorThread, http: requests.Session) -> None:
    resp = http.post(
        api_url(pve_sim, "/nodes/pve1/lxc"),
        data={"vmid": "105", "ostemplate": "x", "net0": "bridge=x"},
    )
    assert resp.status_code == 400
    assert resp.reason == "Parameter verification failed."
    body = resp.json()
    assert body["message"] == "Parameter verification failed.\n"
    assert body["data"] is None
    assert body["errors"] == {
        "net0": "invalid format - format error\nnet0.name: property is missing and it is not optional\n"
    }


def test_proxmoxer_sees_reason_and_errors(pve: ProxmoxAPI) -> None:
    with pytest.raises(ResourceException) as info:
        pve.nodes("pve1").lxc.post(vmid="abc", ostemplate="x")
    exc = info.value
    assert exc.status_code == 400
    assert exc.status_message == "Bad Request"
    assert exc.content == "Parameter verification failed."
    assert exc.errors == {"vmid": "type check ('integer') failed - got 'abc'"}
    assert str(exc).startswith("400 Bad Request: Parameter verification failed.")


def test_unknown_path_501(
    pve_sim: SimulatorThread, http: requests.Session, pve: ProxmoxAPI
) -> None:
    resp = http.get(api_url(pve_sim, "/nodes/pve1/foo"))
    assert (resp.status_code, resp.reason) == (501, "Method 'GET /nodes/pve1/foo' not implemented")
    assert resp.json() == {"data": None, "message": "Method 'GET /nodes/pve1/foo' not implemented"}
    resp = http.post(api_url(pve_sim, "/version"))
    assert resp.reason == "Method 'POST /version' not implemented"
    resp = http.delete(api_url(pve_sim, "/cluster/resources"))
    assert resp.status_code == 501
    with pytest.raises(ResourceException) as info:
        pve.nodes("pve1").qemu.get()
    assert (info.value.status_code, info.value.content) == (
        501,
        "Method 'GET /nodes/pve1/qemu' not implemented",
    )


def test_content_on_get_or_delete_is_501(pve_sim: SimulatorThread, http: requests.Session) -> None:
    resp = http.get(
        api_url(pve_sim, "/version"),
        data="a=1",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (resp.status_code, resp.reason) == (501, "Unexpected content for method 'GET'")
    assert resp.content == b""
    resp = http.delete(api_url(pve_sim, "/nodes/pve1/lxc/105"), data="purge=1")
    assert (resp.status_code, resp.reason) == (501, "Unexpected content for method 'DELETE'")


def test_strict_booleans(pve: ProxmoxAPI, pve_sim: SimulatorThread, http: requests.Session) -> None:
    for bad in (True, "true", "yes", "on", "2"):
        with pytest.raises(ResourceException) as info:
            pve.nodes("pve1").lxc.post(vmid=105, ostemplate="x", rootfs="local-lvm:8", start=bad)
        assert info.value.status_code == 400
        assert info.value.errors == {"start": f"type check ('boolean') failed - got '{bad}'"}
    # but inside property strings Proxmox accepts yes/on/true
    create_ct(pve, 105, features="nesting=yes,keyctl=on")
    assert pve.nodes("pve1").lxc(105).config.get()["features"] == "keyctl=1,nesting=1"
    # JSON true is a real boolean
    resp = http.put(api_url(pve_sim, "/nodes/pve1/lxc/105/config"), json={"onboot": True})
    assert resp.status_code == 200, resp.text
    assert pve.nodes("pve1").lxc(105).config.get()["onboot"] == 1


def test_json_body_and_query_override(
    pve_sim: SimulatorThread, http: requests.Session, pve: ProxmoxAPI
) -> None:
    create_ct(pve, 105)
    url = api_url(pve_sim, "/nodes/pve1/lxc/105/config")
    resp = http.put(url, json={"memory": 700, "hostname": "fromjson"})
    assert resp.status_code == 200 and resp.json() == {"data": None}
    conf = pve.nodes("pve1").lxc(105).config.get()
    assert (conf["memory"], conf["hostname"]) == (700, "fromjson")
    # query parameters override body values
    resp = http.put(url + "?memory=900", data={"memory": "800"})
    assert resp.status_code == 200
    assert pve.nodes("pve1").lxc(105).config.get()["memory"] == 900


def test_repeated_key_is_an_array(pve_sim: SimulatorThread, http: requests.Session) -> None:
    resp = http.get(api_url(pve_sim, "/cluster/resources?type=vm&type=node"))
    assert resp.status_code == 400
    assert resp.json()["errors"] == {"type": "type check ('string') failed - got ARRAY"}


def test_uri_parameter_conflict(pve_sim: SimulatorThread, http: requests.Session) -> None:
    resp = http.get(api_url(pve_sim, "/nodes/pve1/status?node=pve2"))
    assert resp.status_code == 400
    assert resp.json()["errors"] == {
        "node": "duplicate parameter (already defined in URI) with conflicting values!"
    }


def test_total_attribute_on_task_log(
    pve_sim: SimulatorThread, http: requests.Session, pve: ProxmoxAPI
) -> None:
    upid = create_ct(pve, 105)
    body = http.get(api_url(pve_sim, f"/nodes/pve1/tasks/{upid}/log"), params={"limit": 2}).json()
    assert len(body["data"]) == 2 and body["total"] > 2


def test_success_body_shape(pve_sim: SimulatorThread, http: requests.Session) -> None:
    resp = http.get(api_url(pve_sim, "/version"))
    assert resp.status_code == 200 and resp.reason == "OK"
    assert resp.headers["Content-Type"] == "application/json;charset=UTF-8"
    assert set(resp.json()) == {"data"}
    assert resp.json()["data"]["version"].startswith("9.")


def test_outside_api2_json(pve_sim: SimulatorThread, http: requests.Session) -> None:
    resp = http.get(f"{pve_sim.url}/api2/extjs/version")
    assert resp.status_code == 501
