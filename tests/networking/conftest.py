"""Helpers for the gateway tests: a site on a 127.x subnet, stand-in containers, clients."""

from __future__ import annotations

import json
import random
import socket
import socketserver
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from portal.procs import free_port


@pytest.fixture
def no_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Creates queue no Proxmox job: these tests are about the gateway."""
    monkeypatch.setattr("containers.tasks.enqueue_job", lambda job_id: None)
    # Nor is there a Proxmox to ask which VMIDs it uses.
    monkeypatch.setattr("containers.services.proxmox_used_vmids", lambda site: frozenset())


@pytest.fixture
def no_gateway_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Changes queue no apply task (the test applies, or does not need to)."""
    monkeypatch.setattr("networking.services.enqueue_apply", lambda site_id, slug=None: None)


@pytest.fixture
def apply_here(no_gateway_tasks: None, local_gateway: Any) -> None:
    """Applies run in the test process (called by the test), not on the gateway worker."""


@pytest.fixture
def gw_site(site_127: Any, apply_here: None) -> Any:
    """`site_127`, applied in the test process."""
    return site_127


@pytest.fixture
def site_127(local_gateway: Any, no_jobs: None) -> Any:
    """Site `local` on a random 127.x.0.0/16: its containers' addresses are loopback ones."""
    from tests.factories import make_site

    x = random.Random().randint(2, 99)
    return make_site(
        None,
        subnet=f"127.{x}.0.0/16",
        gateway_ip=f"127.{x}.0.1",
        reserved_ranges=f"127.{x}.0.0-127.{x}.0.255",
        dhcp_range_start=f"127.{x}.255.0",
        dhcp_range_end=f"127.{x}.255.254",
        public_port=local_gateway.ports["https"],  # browsers reach the test gateway there
    )


def create(site: Any, hostname: str, owner: Any = None, access: str = "public") -> Any:
    """A container whose route is open to anyone unless said otherwise: these tests fetch
    through the gateway without a login (tests/networking/test_gateway_credential.py
    does the logged-in kinds)."""
    from containers import services
    from tests.factories import UserFactory

    owner = owner or UserFactory(username=f"owner-{hostname}")
    return services.container_create(
        owner=owner, hostname=hostname, template=site.templates.get(), route_access=access
    ).container


def apply(site: Any, **kwargs: Any) -> Any:
    """Ask for an apply and run it here; the revision it recorded."""
    from networking.gateway import apply_site
    from networking.services import request_apply

    request_apply(site)
    outcome = apply_site(site, coalesce=False, **kwargs)
    assert outcome.revision is not None
    return outcome.revision


# -- stand-ins for containers ---------------------------------------------------------------------
class _Echo(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        out = json.dumps(
            {
                "container": self.server.name,
                "path": self.path,  # type: ignore[attr-defined]
                "headers": dict(self.headers.items()),
                # Every Cookie line as it arrived (the dict above keeps only one).
                "cookies": self.headers.get_all("Cookie") or [],
                "body_len": len(body),
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


class StandIns:
    """HTTP servers and banner-first TCP servers on containers' addresses; stopped at the end."""

    def __init__(self) -> None:
        self.servers: list[socketserver.BaseServer] = []

    def http(self, ip: str, name: str) -> int:
        port = free_port(ip)
        srv = ThreadingHTTPServer((ip, port), _Echo)
        srv.name = name  # type: ignore[attr-defined]
        self._serve(srv)
        return port

    def ssh(self, ip: str, banner: bytes) -> int:
        class Banner(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                self.request.sendall(banner)  # speaks first, as sshd does
                data = self.request.recv(1024)
                self.request.sendall(b"echo:" + data)

        port = free_port(ip)
        srv = socketserver.ThreadingTCPServer((ip, port), Banner)
        srv.daemon_threads = True
        self._serve(srv)
        return port

    def _serve(self, srv: socketserver.BaseServer) -> None:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        self.servers.append(srv)

    def close(self) -> None:
        for srv in self.servers:
            srv.shutdown()
            srv.server_close()


@pytest.fixture
def stand_ins() -> Iterator[StandIns]:
    s = StandIns()
    yield s
    s.close()


# -- clients ----------------------------------------------------------------------------------------
def https(
    gw: Any,
    host: str,
    path: str = "/",
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> Any:
    """A request through the gateway's HTTPS server with SNI and certificate checks for `host`."""
    import urllib3

    pool = urllib3.HTTPSConnectionPool(
        "127.0.0.1",
        gw.ports["https"],
        server_hostname=host,
        assert_hostname=host,
        ca_certs=str(gw.ca),
        cert_reqs="CERT_REQUIRED",
        retries=False,
        timeout=10,
    )
    try:
        return pool.request(
            method, path, headers={"Host": host, **(headers or {})}, body=body, redirect=False
        )
    finally:
        pool.close()


def http(gw: Any, host: str, path: str = "/") -> Any:
    import urllib3

    pool = urllib3.HTTPConnectionPool("127.0.0.1", gw.ports["http"], retries=False, timeout=10)
    try:
        return pool.request("GET", path, headers={"Host": host}, redirect=False)
    finally:
        pool.close()


def tcp_exchange(address: str, port: int, message: bytes) -> tuple[bytes, bytes]:
    with socket.create_connection((address, port), timeout=5) as s:
        banner = s.recv(1024)
        s.sendall(message)
        return banner, s.recv(1024)


def resolve(gw: Any, name: str) -> list[str]:
    import dns.resolver

    r = dns.resolver.Resolver(configure=False)
    r.nameservers = ["127.0.0.1"]
    r.port = gw.ports["dns"]
    r.lifetime = 2.0
    try:
        return sorted(a.address for a in r.resolve(name, "A"))
    except dns.resolver.NXDOMAIN:
        return []
