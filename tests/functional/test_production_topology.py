"""The production topology (issue #16, item 7): deploy/'s units, run as they are written.

gunicorn, the proxmox worker, beat and a site's gateway worker start with the ExecStart=
lines of their units and the environment of their EnvironmentFile=s (the shipped
templates: deploy/portal/portal.env.example, deploy/gateway/gateway.env). Only what
differs from host to host is replaced, each listed below: the install's paths become the
checkout and private directories, the secrets test ones, the database a private
PostgreSQL database, Redis private databases of the session's server, the gateway host's
addresses a private gateway's. The portal's NGINX site (deploy/portal/nginx-cluster-portal.conf)
runs in front of gunicorn with a test certificate. The database is made as an upgrade
makes it (`manage.py migrate`), a container is created through the API over HTTPS, and its
name resolves in the gateway's dnsmasq and its route answers through the gateway's NGINX.

The units also pass `systemd-analyze verify` (with their paths relocated the same way, so
that their commands exist).
"""

from __future__ import annotations

import os
import random
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from portal.procs import Managed, find_binary, free_port, port_open, wait_until
from tests.conftest import GATEWAY_TEST_SETTINGS, IN_CI, TOKEN_ID, TOKEN_SECRET, need_binary
from tests.fixtures.deploy_units import (
    DEPLOY,
    REPO,
    UNITS,
    command,
    read_unit,
    relocate,
    unit_environment,
)
from tests.fixtures.networking import StandIns, https, resolve

pytestmark = [pytest.mark.e2e, pytest.mark.gateway, pytest.mark.timeout(120)]

DOMAIN = "apps.example.org"  # the templates' domain: ALLOWED_HOSTS stays as shipped
PORTAL_HOST = f"portal.{DOMAIN}"
SITE = "local"
VENV_BIN = str(Path(sys.executable).parent)
FIELD_KEY = "Zm9yLXRlc3RzLW9ubHktMzItYnl0ZXMta2V5LWhlcmU="


def _fail_or_skip(message: str) -> None:
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


# -- PostgreSQL: a private database ------------------------------------------------------------
def _pg_server_url() -> str:
    """The PostgreSQL server CI provides (DATABASE_URL when it names one)."""
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        return url.rsplit("/", 1)[0]
    return "postgres://postgres@127.0.0.1:5432"


@pytest.fixture
def private_database() -> Iterator[str]:
    import psycopg

    server = _pg_server_url()
    name = f"portal_topology_{os.getpid()}"
    try:
        admin = psycopg.connect(f"{server}/postgres", autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as e:
        _fail_or_skip(f"PostgreSQL is not reachable at {server}: {e}")
    with admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{server}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- the gateway: a private one ---------------------------------------------------------------
@pytest.fixture
def private_gateway(run_dir: Path) -> Iterator[Any]:
    """nginx and dnsmasq of this test's own: the session's gateway belongs to the test database."""
    from django.conf import settings

    from networking.gateway import LocalGateway

    need_binary("nginx")
    need_binary("dnsmasq")
    rnd = random.Random()
    bind = f"127.{rnd.randint(100, 250)}.{rnd.randint(1, 250)}.1"
    gw = LocalGateway(
        run_dir / f"topology-gw-{os.getpid()}-{rnd.randint(0, 10**6)}",
        domains=[DOMAIN],
        stream_bind=bind,
        **GATEWAY_TEST_SETTINGS,
    )
    # LocalGateway.start makes this process use it: give the session's settings back after.
    saved = {key: getattr(settings, key, None) for key in gw.settings}
    try:
        yield gw.start()
    finally:
        gw.stop()
        for key, value in saved.items():
            setattr(settings, key, value)


# -- the environment ----------------------------------------------------------------------------
def host_values(
    *, database: str, redis_url: str, web_port: int, gw: Any, var: Path, logs: Path
) -> tuple[dict[str, str], dict[str, str]]:
    """(paths, overrides): how this run differs from a production host, and nothing more."""
    redis_base = redis_url.rsplit("/", 1)[0]
    paths = {
        "/opt/cluster-portal/.venv/bin": VENV_BIN,
        "/opt/cluster-portal": str(REPO),
        "/var/lib/cluster-portal": str(var),
        "/var/log/cluster-portal": str(logs),
    }
    overrides = {
        "SECRET_KEY": "topology-test-secret-key",
        "FIELD_ENCRYPTION_KEYS": FIELD_KEY,
        "DATABASE_URL": database,
        "CELERY_BROKER_URL": f"{redis_base}/11",  # not the session's: its workers stay out
        "CACHE_URL": f"{redis_base}/12",
        "WEB_BIND": f"127.0.0.1:{web_port}",
        "WEB_CONCURRENCY": "2",
        "AUTH_LDAP_SERVER_URI": "",  # no directory in this test
        # The gateway reaches the portal's auth endpoint directly (no DNS name here).
        "GATEWAY_AUTH_URL": f"http://127.0.0.1:{web_port}/gateway/auth",
        "GATEWAY_ACME_DIR": "",
        # Beat's probe every second, so that the test sees beat, Redis and a worker meet.
        "NODE_PROBE_INTERVAL": "1",
        **gw.env,  # the gateway host's addresses, certificate, servers, test timings
    }
    return paths, overrides


def unit_env(role: str, paths: dict[str, str], overrides: dict[str, str]) -> dict[str, str]:
    env = {k: relocate(v, paths) for k, v in unit_environment(read_unit(UNITS[role])).items()}
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "HOME": paths["/var/lib/cluster-portal"],
        **env,
        **overrides,
    }


def unit_argv(role: str, paths: dict[str, str]) -> tuple[list[str], Path]:
    unit = read_unit(UNITS[role])
    argv = [relocate(a, paths) for a in command(unit, instance=SITE)]
    return argv, Path(relocate(unit.one("Service.WorkingDirectory"), paths))


def run_manage(env: dict[str, str], *args: str, timeout: float = 60) -> str:
    """`manage.py` as an operator runs it on the host (docs/operations.md)."""
    done = subprocess.run(
        [f"{VENV_BIN}/python", "manage.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


SEED = """
from auth.tokens import token_create
from tests.factories import UserFactory, make_site

class Sim:
    url, token_id, token_secret, ca_path = {sim!r}

x = {x}
make_site(
    Sim, domain={domain!r}, subnet=f"127.{{x}}.0.0/16", gateway_ip=f"127.{{x}}.0.1",
    reserved_ranges=f"127.{{x}}.0.0-127.{{x}}.0.255",
    dhcp_range_start=f"127.{{x}}.255.0", dhcp_range_end=f"127.{{x}}.255.254",
    public_port={public_port},
)
user = UserFactory(username="topology")
print("TOKEN=" + token_create(user=user, name="topology", scope="write")[1])
"""


# -- the portal's NGINX site ----------------------------------------------------------------------
def portal_nginx(
    run: Path, *, web_port: int, gw: Any, paths: dict[str, str]
) -> tuple[Managed, int]:
    """deploy/portal/nginx-cluster-portal.conf in a private nginx: loopback ports, the test
    certificate (the gateway's wildcard one, as a single-host install may use)."""
    site = (DEPLOY / "portal" / "nginx-cluster-portal.conf").read_text()
    http_port, https_port = free_port(), free_port()
    site = relocate(site, {**paths, "/var/log/nginx": str(run)})
    site = site.replace("127.0.0.1:8000", f"127.0.0.1:{web_port}")
    site = re.sub(r"\n\s*listen \[::\]:\d+[^;]*;", "", site)
    site = site.replace("listen 80;", f"listen 127.0.0.1:{http_port};")
    site = site.replace("listen 443 ", f"listen 127.0.0.1:{https_port} ")
    site = site.replace(f"/etc/letsencrypt/live/{DOMAIN}", str(gw.tls_dir))
    live = re.sub(r"#[^\n]*", "", site)
    assert not re.search(r"\s/(etc|var)/", live), live
    (run / "site.conf").write_text(site)
    user = f"user {os.environ.get('USER') or 'root'};" if os.geteuid() == 0 else ""
    (run / "nginx.conf").write_text(
        f"{user}\nworker_processes 1;\npid {run}/nginx.pid;\nerror_log {run}/error.log;\n"
        "events { worker_connections 256; }\n"
        f"http {{\n  client_body_temp_path {run}/body;\n  proxy_temp_path {run}/proxy;\n"
        f"  fastcgi_temp_path {run}/fcgi;\n  uwsgi_temp_path {run}/uwsgi;\n"
        f"  scgi_temp_path {run}/scgi;\n  include {run}/site.conf;\n}}\n"
    )
    nginx = str(find_binary("nginx"))
    argv = [nginx, "-p", f"{run}/", "-c", f"{run}/nginx.conf", "-g", "daemon off;"]
    test = subprocess.run([*argv[:-2], "-t"], capture_output=True, text=True)
    assert test.returncode == 0, test.stderr
    return Managed(argv, log_path=run / "nginx.out"), https_port


def portal_request(port: int, gw: Any, method: str, path: str, token: str, **kw: Any) -> Any:
    import urllib3

    pool = urllib3.HTTPSConnectionPool(
        "127.0.0.1",
        port,
        server_hostname=PORTAL_HOST,
        assert_hostname=PORTAL_HOST,
        ca_certs=str(gw.ca),
        cert_reqs="CERT_REQUIRED",
        retries=False,
        timeout=10,
    )
    headers = {"Host": PORTAL_HOST, "Authorization": f"Bearer {token}", **kw.pop("headers", {})}
    try:
        return pool.request(method, path, headers=headers, **kw)
    finally:
        pool.close()


# -- the test ---------------------------------------------------------------------------------------
def test_the_deploy_units_run_the_portal_and_route_a_new_container(
    sim: Any, redis_url: str, private_database: str, private_gateway: Any, run_dir: Path
) -> None:
    began = time.monotonic()
    gw = private_gateway
    run = run_dir / f"topology-{os.getpid()}"
    var, logs = run / "var", run / "log"
    for d in (var, logs, run / "nginx"):
        d.mkdir(parents=True, exist_ok=True)
    web_port = free_port()
    paths, overrides = host_values(
        database=private_database, redis_url=redis_url, web_port=web_port, gw=gw, var=var, logs=logs
    )
    import redis

    for db in (overrides["CELERY_BROKER_URL"], overrides["CACHE_URL"]):
        redis.Redis.from_url(db).flushdb()

    # The install's steps on a fresh database: migrate, collectstatic, then the site's rows.
    web_env = unit_env("web", paths, overrides)
    run_manage(web_env, "migrate", "--noinput")
    run_manage(web_env, "collectstatic", "--noinput")
    x = random.Random().randint(2, 99)
    sim_values = (sim.url, TOKEN_ID, TOKEN_SECRET, str(sim.ca_path))
    out = run_manage(
        web_env,
        "shell",
        "-c",
        SEED.format(sim=sim_values, x=x, domain=DOMAIN, public_port=gw.ports["https"]),
    )
    token = out.split("TOKEN=", 1)[1].split()[0]

    with ExitStack() as stack:
        procs: dict[str, Managed] = {}
        for role in UNITS:
            argv, cwd = unit_argv(role, paths)
            proc = Managed(
                argv, log_path=run / f"{role}.log", env=unit_env(role, paths, overrides), cwd=cwd
            )
            procs[role] = proc.start()
            stack.callback(proc.stop)
        nginx, https_port = portal_nginx(run / "nginx", web_port=web_port, gw=gw, paths=paths)
        stack.callback(nginx.start().stop)
        wait_until(lambda: port_open("127.0.0.1", web_port), timeout=30, what="gunicorn")
        wait_until(lambda: port_open("127.0.0.1", https_port), timeout=10, what="nginx")

        # The access log of the unit's environment is written where logrotate looks.
        health = portal_request(https_port, gw, "GET", "/healthz", token)
        assert health.status == 200, health.data
        assert (logs / "access.log").exists()
        css = portal_request(https_port, gw, "GET", "/static/portal/app.css", token)
        assert css.status == 200 and b"{" in css.data

        created = portal_request(
            https_port,
            gw,
            "POST",
            "/api/v1/containers/",
            token,
            json={"hostname": "topo", "template": "debian-12", "route_access": "public"},
        )
        assert created.status == 202, created.data
        job_id, container_id = created.json()["job"]["id"], created.json()["container"]["id"]
        job = _wait_job(https_port, gw, token, job_id, procs)
        assert job["status"] == "succeeded", (job, _logs(procs))

        # Its event stream passes NGINX unbuffered and ends with the job.
        stream = portal_request(
            https_port,
            gw,
            "GET",
            f"/api/v1/jobs/{job_id}/events/",
            token,
            headers={"Accept": "text/event-stream"},
        )
        assert stream.status == 200 and stream.headers["Content-Type"] == "text/event-stream"
        assert b"event: end" in stream.data

        container = portal_request(
            https_port, gw, "GET", f"/api/v1/containers/{container_id}/", token
        ).json()
        ip = container["ip"]
        assert resolve(gw, "topo.cluster.example.test") == [ip]
        _assert_routed(gw, ip)

        # Beat's probe reached the proxmox worker through Redis.
        wait_until(
            lambda: "containers.probe_nodes" in procs["proxmox"].log_text(),
            timeout=10,
            what="a probe sent by beat",
        )
        for role, proc in procs.items():
            assert proc.alive(), f"{role} exited:\n{proc.log_text()[-3000:]}"
    assert time.monotonic() - began < 60


def _wait_job(port: int, gw: Any, token: str, job_id: str, procs: dict[str, Managed]) -> Any:
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        job = portal_request(port, gw, "GET", f"/api/v1/jobs/{job_id}/", token).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never ended: {job}\n{_logs(procs)}")


def _logs(procs: dict[str, Managed]) -> str:
    return "\n".join(f"--- {r}\n{p.log_text()[-2000:]}" for r, p in procs.items())


def _assert_routed(gw: Any, ip: str) -> None:
    """Through the gateway's NGINX: a stand-in on the container's address when this user may
    bind its port 80 (root, as CI runs), else the gateway's own 502 page, which only a
    published route gets (an unknown name is a 404)."""
    host = f"topo.{DOMAIN}"
    assert https(gw, f"nothing.{DOMAIN}").status == 404
    stand_ins = StandIns()
    try:
        try:
            probe = socket.socket()
            probe.bind((ip, 80))
            probe.close()
            can_bind = True
        except PermissionError:
            can_bind = False
        if can_bind:
            from http.server import ThreadingHTTPServer

            from tests.fixtures.networking import _Echo

            srv = ThreadingHTTPServer((ip, 80), _Echo)
            srv.name = "topo"  # type: ignore[attr-defined]
            stand_ins._serve(srv)
            answer = https(gw, host, "/hello")
            assert answer.status == 200, answer.data
            assert answer.json()["container"] == "topo" and answer.json()["path"] == "/hello"
        else:
            assert https(gw, host).status == 502
    finally:
        stand_ins.close()


# -- systemd-analyze verify ----------------------------------------------------------------------
def test_the_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """Every unit in deploy/, relocated to this checkout so that its commands exist; any
    warning (an unknown key, a bad value) fails, not only the exit status."""
    analyze = find_binary("systemd-analyze")
    if analyze is None:
        # Installable wherever apt is: CI installs it (scripts/system-deps.sh).
        _fail_or_skip("systemd-analyze is not installed (apt-get install systemd)")
    paths = {
        "/opt/cluster-portal/.venv/bin": VENV_BIN,
        "/opt/cluster-portal": str(REPO),
        # deploy/sssd's unit runs inside containers, from where its README installs it.
        "/usr/local/sbin/portal-access-setup.sh": str(DEPLOY / "sssd" / "portal-access-setup.sh"),
    }
    names = []
    for source in sorted(DEPLOY.rglob("*.service")):
        (tmp_path / source.name).write_text(relocate(source.read_text(), paths))
        names.append(source.name.replace("@.", f"@{SITE}."))
    done = subprocess.run(
        [str(analyze), "verify", "--man=no", *(str(tmp_path / n) for n in names)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and not (done.stdout + done.stderr).strip(), (
        done.stdout + done.stderr
    )
    assert {n.split("@")[0] for n in names} >= {
        "cluster-portal-web.service",
        "cluster-portal-worker.service",
        "cluster-portal-beat.service",
        "cluster-portal-gateway-worker",
    }
