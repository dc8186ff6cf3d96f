"""`manage.py demo` as a newcomer runs it: a subprocess with a clean environment and its
own var directory (under pytest's 0700 temporary directory, as a checkout in /root).

One demo for the module: the identity test logs in as alice against the demo's slapd;
the restart test stops it, takes the preferred ports, starts it again and stops it,
checking ports, rendered files and PIDs.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from portal.gateway_defaults import LOCAL_STREAM_SHARDS
from portal.management.demo_stack import PREFERRED_PORTS
from portal.procs import BASE_DIR, free_port, pid_alive, port_open
from tests.conftest import need_binary

pytestmark = [pytest.mark.demo, pytest.mark.timeout(240)]


class Demo:
    """One `manage.py demo` process at a time on `var`, started and stopped as a user would."""

    def __init__(self, var: Path, port: int) -> None:
        self.var, self.port = var, port
        self.proc: subprocess.Popen[str] | None = None
        self.output: list[str] = []
        self.start_seconds = 0.0

    @property
    def env(self) -> dict[str, str]:
        keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "CI")
        return {
            **{k: os.environ[k] for k in keep if k in os.environ},
            "PORTAL_DEMO": "1",
            "DEBUG": "1",
            "PORTAL_VAR_DIR": str(self.var),
        }

    def launch(self, *args: str, **env: str) -> subprocess.Popen[str]:
        self.output = []
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "demo", "--port", str(self.port), *args],
            cwd=BASE_DIR,
            env={**self.env, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        assert proc.stdout is not None
        threading.Thread(target=lambda: self.output.extend(proc.stdout), daemon=True).start()  # type: ignore[arg-type]
        return proc

    @property
    def text(self) -> str:
        return "".join(self.output)

    def start(self, timeout: float = 120) -> Demo:
        began = time.monotonic()
        self.proc = self.launch()
        deadline = began + timeout
        while "demo is running" not in self.text:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"the demo did not start:\n{self.text}")
            time.sleep(0.1)
        self.start_seconds = time.monotonic() - began
        return self

    @property
    def run(self) -> dict[str, Any]:
        return json.loads((self.var / "demo-run.json").read_text())

    @property
    def state(self) -> dict[str, Any]:
        return json.loads((self.var / "demo.json").read_text())

    def pids(self) -> list[int]:
        """The demo's own PID, everything it recorded, and nginx's workers."""
        run = self.run
        pids = [run["pid"], *(p["pid"] for p in run["processes"].values())]
        nginx = run["processes"].get("nginx", {}).get("pid")
        if nginx:
            children = Path(f"/proc/{nginx}/task/{nginx}/children").read_text().split()
            pids += [int(c) for c in children]
        return pids

    def stop(self, sig: int = signal.SIGTERM) -> float:
        """SIGTERM to the demo, or SIGINT to its process group: Ctrl-C in its terminal."""
        if self.proc is None:
            return 0.0
        began = time.monotonic()
        if self.proc.poll() is None:
            if sig == signal.SIGINT:
                os.killpg(self.proc.pid, sig)
            else:
                self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None
        return time.monotonic() - began


def processes_naming(var: Path) -> list[str]:
    """Live processes whose command line or environment names the demo's var directory."""
    found = []
    needle = str(var).encode()
    for d in Path("/proc").glob("[0-9]*"):
        pid = int(d.name)
        if pid == os.getpid() or not pid_alive(pid):
            continue
        try:
            if needle in (d / "cmdline").read_bytes() or needle in (d / "environ").read_bytes():
                found.append(f"{pid}: {(d / 'cmdline').read_bytes()[:200]!r}")
        except OSError:
            continue
    return found


def wait_gone(pids: list[int], timeout: float = 10) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [p for p in pids if pid_alive(p)]
        if not left:
            return []
        time.sleep(0.1)
    return left


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    for binary in ("nginx", "dnsmasq", "slapd", "slapadd"):
        need_binary(binary)
    var = tmp_path_factory.mktemp("demo") / "checkout" / "var"
    d = Demo(var, free_port())
    yield d
    d.stop()
    # The containers' files live outside var/ (demo_stack.guest_dir), 0711 in /var/tmp.
    with contextlib.suppress(OSError, KeyError, ValueError):
        shutil.rmtree(d.state["guest_dir"], ignore_errors=True)


def _api(page: Any, path: str) -> Any:
    response = page.request.get(path)
    assert response.ok, response.text()
    return response.json()


def _wait_for(page: Any, path: str, done: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        body = _api(page, path)
        if done(body):
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} still {body}")
        time.sleep(0.3)


def _ldap_group(demo: Demo, cn: str) -> list[str]:
    import ldap3

    run = demo.run
    uri = next(line for line in demo.text.splitlines() if "ldap://" in line)
    uri = uri[uri.index("ldap://") :].split()[0]
    conn = ldap3.Connection(
        ldap3.Server(uri),
        "cn=admin,dc=example,dc=test",
        demo.state["ldap"]["admin"],
        auto_bind=True,
    )
    conn.search("ou=containers,dc=example,dc=test", f"(cn={cn})", attributes=["memberUid"])
    members = [str(m) for e in conn.entries for m in e.memberUid.values]
    conn.unbind()
    assert run["processes"]["slapd"]["pid"]
    return sorted(members)


@pytest.mark.ldap
@pytest.mark.browser
def test_alice_logs_in_to_the_demo_and_creates_a_container(demo: Demo, browser: Any) -> None:
    began = time.monotonic()
    demo.start()
    state = demo.state
    assert f"alice / {state['ldap']['alice']}" in demo.text  # shown once, on the first start
    assert "bob / " in demo.text and "operator (staff)" in demo.text
    assert (demo.var / "demo.json").stat().st_mode & 0o777 == 0o600

    context = browser.new_context(
        base_url=f"http://127.0.0.1:{demo.port}", ignore_https_errors=True
    )
    context.set_default_timeout(20_000)
    page = context.new_page()
    try:
        page.goto("/accounts/login/")
        page.get_by_label("Username").fill("alice")
        page.get_by_label("Password").fill(state["ldap"]["alice"])
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(lambda url: "/login" not in url)
        page.goto("/containers/new/")
        page.get_by_label("Hostname").fill("alices")
        page.get_by_role("button", name="Create container").click()
        page.wait_for_url("**/containers/*/")
        pk = int(page.url.rstrip("/").rsplit("/", 1)[1])
        box = _wait_for(page, f"/api/v1/containers/{pk}/", lambda c: c["status"] == "running")
        https = demo.run["ports"]["https"]
        assert box["url"] == f"https://alices.apps.localhost:{https}/"
        # Guest emulation: the CT's sshd listens on its address, though var/ is under a
        # 0700 directory (the CTs' files are in demo.json's guest_dir).
        guests = Path(demo.state["guest_dir"])
        assert guests.stat().st_mode & 0o777 == 0o711
        deadline = time.monotonic() + 20
        while not port_open(box["ip"], 22):
            assert time.monotonic() < deadline, "the demo's CT has no sshd"
            time.sleep(0.2)
        assert _ldap_group(demo, "ct-alices") == ["alice"]

        # bob (only in the directory so far) becomes a collaborator: the group follows.
        page.goto(f"/containers/{pk}/")
        page.get_by_label("Add a collaborator").fill("bob")
        page.get_by_role("button", name="Add collaborator").click()
        deadline = time.monotonic() + 30
        while _ldap_group(demo, "ct-alices") != ["alice", "bob"]:
            assert time.monotonic() < deadline, "bob never reached the access group"
            time.sleep(0.3)

        # The link the portal shows opens in the browser: *.localhost is this machine,
        # and the gateway answers (nothing listens in a simulated container: its 502 page).
        page.goto(f"/containers/{pk}/")
        link = page.get_by_role("link", name=box["url"]).first.get_attribute("href")
        assert link == box["url"]
        answer = page.goto(link)
        assert answer is not None and answer.status == 502
        assert "Cluster Portal" in page.title()
    finally:
        context.close()
    print(f"demo first start {demo.start_seconds:.1f} s; test {time.monotonic() - began:.1f} s")


def _hold(ports: list[int]) -> list[socket.socket]:
    """Listen on each port (TCP, and UDP for DNS) that is free; the others are taken already."""
    held = []
    for port in ports:
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            s = socket.socket(socket.AF_INET, kind)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
                if kind == socket.SOCK_STREAM:
                    s.listen()
                held.append(s)
            except OSError:
                s.close()
    return held


def _served_404(port: int, ca: Path) -> int:
    done = subprocess.run(
        [
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--cacert",
            str(ca),
            "--resolve",
            f"nobody-here.apps.localhost:{port}:127.0.0.1",
            f"https://nobody-here.apps.localhost:{port}/",
        ],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    return int(done.stdout or 0)


@pytest.mark.gateway
def test_a_restart_on_taken_ports_comes_up_on_free_ones_and_leaves_nothing(demo: Demo) -> None:
    began = time.monotonic()
    if demo.proc is None:
        demo.start()
    first = demo.pids()
    first_stop = demo.stop(signal.SIGINT)
    assert wait_gone(first) == [], demo.text
    assert not (demo.var / "demo-run.json").exists()
    # As a run stopped while a worker was asking the simulator leaves them: the next run's
    # simulator answers, and the demo must not refuse to start for it.
    with sqlite3.connect(demo.var / "portal.sqlite3") as db:
        db.execute("UPDATE networking_node SET state = 'offline', offline_reason = 'gone'")

    held = _hold([*PREFERRED_PORTS.values(), PREFERRED_PORTS["status"] + 1])
    try:
        # A busy web port is an error, not a banner.
        busy = Demo(demo.var, PREFERRED_PORTS["http"])
        proc = busy.launch()
        assert proc.wait(timeout=60) != 0
        time.sleep(0.2)
        assert f"port {busy.port}" in busy.text and "--port" in busy.text, busy.text
        assert "demo is running" not in busy.text

        demo.start()
        ports = demo.run["ports"]
        for name, preferred in PREFERRED_PORTS.items():
            assert ports[name] != preferred, (name, demo.text)
        gw = demo.var / "gateway"
        nginx_conf = (gw / "nginx" / "nginx.conf").read_text()
        assert f"listen 127.0.0.1:{ports['https']} ssl" in nginx_conf
        assert f"listen 127.0.0.1:{ports['http']} default_server" in nginx_conf
        assert f"listen 127.0.0.1:{ports['status']};" in nginx_conf
        # The stream shards' status servers follow it (the held ports included 18100).
        for i in range(LOCAL_STREAM_SHARDS):
            shard = (gw / "nginx" / f"stream-{i}.conf").read_text()
            assert f"listen 127.0.0.1:{ports['status'] + 1 + i};" in shard
        assert f"port={ports['dns']}\n" in (gw / "dnsmasq" / "dnsmasq.conf").read_text()
        assert f"proxy_pass http://127.0.0.1:{demo.port}/gateway/auth;" in nginx_conf
        assert _served_404(ports["https"], demo.var / "gateway-tls" / "ca.pem") == 404
        assert f"https://<hostname>.apps.localhost:{ports['https']}/" in demo.text

        # One demo per var directory, whatever its port.
        twin = Demo(demo.var, free_port())
        assert twin.launch().wait(timeout=60) != 0
        time.sleep(0.2)
        assert f"another demo is running from {demo.var}" in twin.text, twin.text
    finally:
        second = demo.pids() if demo.proc is not None else []
        second_stop = demo.stop()
        for s in held:
            s.close()
    assert second and wait_gone(second) == []
    assert processes_naming(demo.var) == []
    print(
        f"restart: start {demo.start_seconds:.1f} s, stops {first_stop:.1f} s and "
        f"{second_stop:.1f} s; test {time.monotonic() - began:.1f} s"
    )


@pytest.mark.gateway
def test_a_start_that_fails_stops_what_it_started(demo: Demo) -> None:
    """A stream shard's nginx cannot start (its stream module is missing): the HTTP nginx,
    the simulator, slapd and anything else already started are stopped, and no banner
    is printed."""
    demo.stop()
    proc = demo.launch(GATEWAY_NGINX_STREAM_MODULE="/nonexistent/ngx_stream_module.so")
    assert proc.wait(timeout=120) != 0
    time.sleep(0.2)
    assert "nginx (stream shard 0) did not start" in demo.text, demo.text
    assert "ngx_stream_module.so" in demo.text and "demo is running" not in demo.text
    assert "pvesim (Proxmox simulator) on" in demo.text  # it had got that far
    assert not (demo.var / "demo-run.json").exists()
    deadline = time.monotonic() + 10
    while processes_naming(demo.var) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_naming(demo.var) == []
