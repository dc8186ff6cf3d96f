"""Applying a site's gateway files on the gateway host: stage, validate, swap, reload.

The live tree under GATEWAY_DIR::

    current -> releases/<generation>-<hash>     one symlink: the swap is one rename
    nginx   -> current/nginx                    what nginx -c and dnsmasq read
    dnsmasq -> current/dnsmasq
    releases/  staging/                         the last few releases; work in progress
    run/       pid files, logs, nginx temp dirs, the apply lock (never swapped)
    acme/      the ACME HTTP-01 webroot

An apply holds a file lock (so one runs at a time on the host), reads the site's
generation counter, renders the database, and stops early when nothing changed. It
validates a staged copy with the real `nginx -t` and `dnsmasq --test`; an error that
points at one entry leaves that entry out and tries again, anything else keeps the
live files. After the swap nginx gets SIGHUP and is asked, on its loopback status
server, which revision it serves; a new port that cannot be bound leaves its mapping
out. dnsmasq gets SIGHUP for hosts and reservations, a restart for its main file.
Every apply is recorded as a ConfigRevision.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import pwd
import re
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from portal.errors import UpstreamError, UpstreamUnavailable
from portal.procs import pid_alive, stop_pid, wait_until

from .models import ConfigRevision, GatewayState, RevisionStatus, Site
from .render import (
    MANIFEST_FILE,
    GatewayOptions,
    Rendered,
    RenderError,
    UnsafeValue,
    bootstrap_state,
    file_hashes,
    load_state,
    render,
)

log = logging.getLogger(__name__)

MAX_ROUNDS = 5  # validation rounds that may each leave out blamed entries
TRANSIENT_ERRORS = frozenset({"server_down", "reload"})


class ApplyFailed(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# -- paths --------------------------------------------------------------------------------------
def find_binary(name: str) -> str | None:
    if "/" in name:
        return name if os.access(name, os.X_OK) else None
    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@dataclass(frozen=True)
class GatewayPaths:
    root: Path
    nginx_pid_file: Path
    dnsmasq_pid_file: Path

    @classmethod
    def from_settings(cls, root: Path | None = None) -> GatewayPaths:
        base = Path(root or settings.GATEWAY_DIR)
        return cls(
            root=base,
            nginx_pid_file=Path(settings.GATEWAY_NGINX_PID_FILE or base / "run" / "nginx.pid"),
            dnsmasq_pid_file=Path(
                settings.GATEWAY_DNSMASQ_PID_FILE or base / "run" / "dnsmasq.pid"
            ),
        )

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def current(self) -> Path:
        return self.root / "current"

    @property
    def releases(self) -> Path:
        return self.root / "releases"

    @property
    def staging(self) -> Path:
        return self.root / "staging"

    @property
    def nginx_conf(self) -> Path:
        return self.root / "nginx" / "nginx.conf"

    @property
    def nginx_prefix(self) -> Path:
        return self.root / "nginx"

    @property
    def dnsmasq_conf(self) -> Path:
        return self.root / "dnsmasq" / "dnsmasq.conf"

    @property
    def nginx_error_log(self) -> Path:
        return self.run / "logs" / "nginx-error.log"

    def ensure(self, acme_dir: str = "") -> None:
        """The directories and the two fixed symlinks (once; moving real directories aside)."""
        for d in (
            self.root,
            self.run,
            self.run / "logs",
            self.run / "tmp",
            self.releases,
            self.staging,
            Path(acme_dir or self.root / "acme") / ".well-known" / "acme-challenge",
        ):
            d.mkdir(parents=True, exist_ok=True)
        # nginx and dnsmasq drop to `nobody`: they must be able to walk to their files.
        for d in (self.root, self.run, self.run / "logs", self.releases):
            d.chmod(0o755)
        for part in ("nginx", "dnsmasq"):
            link = self.root / part
            if link.is_symlink():
                continue
            if link.exists():  # e.g. var/gateway/dnsmasq made before the first apply
                link.rename(self.releases / f"pre-{part}-{int(time.time())}")
            link.symlink_to(Path("current") / part)

    def live_release(self) -> Path | None:
        if not self.current.is_symlink():
            return None
        target = self.current.resolve()
        return target if target.is_dir() else None

    def live_manifest(self) -> dict[str, Any] | None:
        release = self.live_release()
        if release is None:
            return None
        try:
            manifest: dict[str, Any] = json.loads((release / MANIFEST_FILE).read_text())
            return manifest
        except (OSError, ValueError):
            return None

    def point_current(self, release: Path) -> None:
        tmp = self.root / f".current.{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(Path("releases") / release.name)
        os.replace(tmp, self.current)  # atomic: readers see the old tree or the new one

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One apply at a time on this host (threads and processes alike)."""
        self.run.mkdir(parents=True, exist_ok=True)
        with open(self.run / "apply.lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


def write_tree(files: dict[str, str], directory: Path) -> None:
    for rel, content in files.items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        path.write_text(content)
        path.chmod(0o644)
    for d in [directory, *(p for p in directory.rglob("*") if p.is_dir())]:
        d.chmod(0o755)


def _raise_nofile() -> None:
    # nginx opens one socket per mapping even for `-t`; let it (a child) use the hard
    # limit. Raised in this process, once, so that children start without a preexec hook
    # (which would force a slow fork of the whole worker).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _run(argv: list[str], *, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    _raise_nofile()
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


# -- validation ---------------------------------------------------------------------------------
_NGINX_WHERE = re.compile(r"\[emerg\] .*? in (?P<path>/\S+):(?P<line>\d+)")
_DNSMASQ_WHERE = re.compile(r"at line (?P<line>\d+) of (?P<path>/\S+)")
_BIND_FAILED = re.compile(r"bind\(\) to (?P<addr>\S+):(?P<port>\d+) failed")


def nginx_test(conf: Path, prefix: Path) -> tuple[bool, str]:
    binary = find_binary(settings.GATEWAY_NGINX_BIN)
    if not binary:
        raise ApplyFailed(
            "validate",
            f"nginx ({settings.GATEWAY_NGINX_BIN}) is not installed on "
            "the gateway host; install nginx and libnginx-mod-stream",
        )
    out = _run([binary, "-t", "-q", "-c", str(conf), "-p", f"{prefix}/"])
    return out.returncode == 0, (out.stderr + out.stdout).strip()


def dnsmasq_test(conf: Path) -> tuple[bool, str]:
    binary = find_binary(settings.GATEWAY_DNSMASQ_BIN)
    if not binary:
        raise ApplyFailed(
            "validate",
            f"dnsmasq ({settings.GATEWAY_DNSMASQ_BIN}) is not "
            "installed on the gateway host; install dnsmasq-base",
        )
    out = _run([binary, "--test", f"--conf-file={conf}"])
    return out.returncode == 0, (out.stderr + out.stdout).strip()


_LOG_PREFIX = re.compile(r"^.*?\[(?:emerg|alert|crit|error)\] (?:\d+#\d+: )?")


def blame(
    output: str, rendered: Rendered, stage: Path, pattern: re.Pattern[str]
) -> dict[tuple[str, int], str]:
    """The entries a validator's error lines point at (file and line of the staged copy),
    each with the validator's words."""
    found = {}
    for line in output.splitlines():
        m = pattern.search(line)
        if not m:
            continue
        try:
            rel = Path(m["path"]).resolve().relative_to(stage.resolve()).as_posix()
        except ValueError:
            continue
        owner = rendered.owner_of(rel, int(m["line"]))
        if owner:
            found[owner] = _LOG_PREFIX.sub("", line).replace(f"{stage}/", "")
    return found


def port_in_use(bind: str, port: int, protocol: str) -> str | None:
    """Why `bind:port` cannot be listened on here, or None (nginx -t ignores EADDRINUSE)."""
    host = bind.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    kind = socket.SOCK_DGRAM if protocol == "udp" else socket.SOCK_STREAM
    with socket.socket(family, kind) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


# -- the servers ----------------------------------------------------------------------------------
def read_pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, IndexError, ValueError):
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(stat.parent.name))
        return found


def _retired(pid: int) -> bool:
    """An old nginx worker has stopped accepting: gone, or (after QUIT) shutting down."""
    try:
        return b"shutting down" in Path(f"/proc/{pid}/cmdline").read_bytes() or not pid_alive(pid)
    except OSError:
        return True


def _http_get(url: str, timeout: float = 1.0) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - our own loopback URL
            return str(resp.read().decode().strip())
    except OSError:
        return None


def status_url(listen: str) -> str:
    host, _, port = listen.rpartition(":")
    if host in ("", "0.0.0.0", "*"):  # noqa: S104 - parsing a listen address, not binding
        host = "127.0.0.1"
    elif host == "[::]":
        host = "[::1]"
    return f"http://{host}:{port}/revision"


class Nginx:
    def __init__(self, paths: GatewayPaths, options: GatewayOptions) -> None:
        self.paths, self.options = paths, options

    def pid(self) -> int | None:
        return read_pid(self.paths.nginx_pid_file)

    def served(self) -> str | None:
        return _http_get(status_url(self.options.status_listen))

    def workers(self) -> list[int]:
        pid = self.pid()
        return _children(pid) if pid else []

    def reload(self) -> None:
        if settings.GATEWAY_NGINX_RELOAD_COMMAND:
            out = _run(shlex.split(settings.GATEWAY_NGINX_RELOAD_COMMAND))
            if out.returncode:
                raise ApplyFailed(
                    "reload", f"the nginx reload command failed: {out.stderr.strip()}"
                )
            return
        pid = self.pid()
        if pid is None:
            raise ApplyFailed(
                "server_down",
                "nginx is not running on the gateway host "
                f"(no live PID in {self.paths.nginx_pid_file})",
            )
        os.kill(pid, signal.SIGHUP)

    def start(self) -> None:
        binary = find_binary(settings.GATEWAY_NGINX_BIN)
        if not binary:
            raise FileNotFoundError("nginx is not installed")
        out = _run([binary, "-c", str(self.paths.nginx_conf), "-p", f"{self.paths.nginx_prefix}/"])
        if out.returncode:
            raise RuntimeError(f"nginx did not start: {out.stderr.strip()}")
        wait_until(lambda: self.served() is not None, timeout=10, what="nginx")

    def stop(self) -> None:
        pid = self.pid()
        if pid:
            stop_pid(pid, sig=signal.SIGQUIT, timeout=10)


class Dnsmasq:
    def __init__(self, paths: GatewayPaths, options: GatewayOptions) -> None:
        self.paths, self.options = paths, options

    def pid(self) -> int | None:
        return read_pid(self.paths.dnsmasq_pid_file)

    def reload(self) -> None:
        if settings.GATEWAY_DNSMASQ_RELOAD_COMMAND:
            out = _run(shlex.split(settings.GATEWAY_DNSMASQ_RELOAD_COMMAND))
            if out.returncode:
                raise ApplyFailed(
                    "reload", f"the dnsmasq reload command failed: {out.stderr.strip()}"
                )
            return
        pid = self.pid()
        if pid is None:
            raise ApplyFailed(
                "server_down",
                "dnsmasq is not running on the gateway host "
                f"(no live PID in {self.paths.dnsmasq_pid_file})",
            )
        os.kill(pid, signal.SIGHUP)

    def restart(self) -> None:
        if settings.GATEWAY_DNSMASQ_RESTART_COMMAND:
            out = _run(shlex.split(settings.GATEWAY_DNSMASQ_RESTART_COMMAND))
            if out.returncode:
                raise ApplyFailed(
                    "reload", f"the dnsmasq restart command failed: {out.stderr.strip()}"
                )
            return
        self.stop()
        self.start()

    def start(self) -> None:
        binary = find_binary(settings.GATEWAY_DNSMASQ_BIN)
        if not binary:
            raise FileNotFoundError("dnsmasq is not installed")
        # dnsmasq daemonises and writes its pid file; it is stopped by that PID.
        out = _run([binary, f"--conf-file={self.paths.dnsmasq_conf}"])
        if out.returncode:
            raise ApplyFailed("reload", f"dnsmasq did not start: {out.stderr.strip()}")
        wait_until(lambda: self.pid() is not None, timeout=10, what="dnsmasq")

    def stop(self) -> None:
        pid = self.pid()  # read first: dnsmasq deletes its pid file as it exits
        if pid:
            stop_pid(pid, timeout=10)


# -- the apply ------------------------------------------------------------------------------------
@dataclass
class ApplyOutcome:
    revision: ConfigRevision | None
    coalesced: bool = False

    @property
    def ok(self) -> bool:
        return self.revision is None or self.revision.succeeded


@dataclass
class _Run:
    site: Site
    generation: int
    paths: GatewayPaths
    options: GatewayOptions
    force: bool
    started: float = field(default_factory=time.monotonic)
    timings: dict[str, float] = field(default_factory=dict)
    actions: list[str] = field(default_factory=list)
    exclude: set[tuple[str, int]] = field(default_factory=set)
    blamed: dict[tuple[str, int], str] = field(default_factory=dict)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        t = time.monotonic()
        try:
            yield
        finally:
            self.timings[name] = round(self.timings.get(name, 0.0) + time.monotonic() - t, 4)


def apply_site(
    site: Site | int,
    *,
    force: bool = False,
    paths: GatewayPaths | None = None,
    options: GatewayOptions | None = None,
    coalesce: bool = True,
) -> ApplyOutcome:
    """Make the gateway serve the site's current database state (see the module doc)."""
    site = site if isinstance(site, Site) else Site.objects.get(pk=site)
    paths = paths or GatewayPaths.from_settings()
    options = options or GatewayOptions.from_settings(paths.root)
    with paths.locked():
        paths.ensure(options.acme_dir)
        state, _ = GatewayState.objects.get_or_create(site=site)
        live = paths.live_manifest()
        installed = live is not None and live.get("site") == site.slug
        if not force and installed and state.applied >= state.requested:
            return ApplyOutcome(revision=None, coalesced=True)  # an earlier apply covered it
        generation = _settle(site) if coalesce and not force else _requested(site)
        run = _Run(site=site, generation=generation, paths=paths, options=options, force=force)
        try:
            revision = _apply(run)
        except ApplyFailed as exc:
            revision = _record(
                run, status=RevisionStatus.FAILED, error_code=exc.code, error=exc.message
            )
            log.warning("gateway apply for %s failed (%s): %s", site.slug, exc.code, exc.message)
        return ApplyOutcome(revision=revision)


def _requested(site: Site) -> int:
    return int(GatewayState.objects.values_list("requested", flat=True).get(site=site))


def _settle(site: Site) -> int:
    """Wait for a quiet moment (no new request for GATEWAY_COALESCE_SECONDS, at most
    GATEWAY_COALESCE_MAX_SECONDS), so that a burst of changes costs one apply."""
    quiet, longest = settings.GATEWAY_COALESCE_SECONDS, settings.GATEWAY_COALESCE_MAX_SECONDS
    generation = _requested(site)
    if quiet <= 0:
        return generation
    deadline = time.monotonic() + longest
    while time.monotonic() < deadline:
        time.sleep(quiet)
        latest = _requested(site)
        if latest == generation:
            break
        generation = latest
    return generation


def _record(
    run: _Run,
    *,
    status: str,
    rendered: Rendered | None = None,
    changed: list[str] | None = None,
    error_code: str = "",
    error: str = "",
    summary: str = "",
) -> ConfigRevision:
    excluded = list(rendered.excluded) if rendered else []
    for item in excluded:
        why = run.blamed.get((item["kind"], item["id"]))
        if why:
            item["reason"] = why
    counts: dict[str, Any] = dict(rendered.counts) if rendered else {}
    if summary:
        counts["summary"] = summary
    revision = ConfigRevision.objects.create(
        site=run.site,
        generation=run.generation,
        status=status,
        content_hash=rendered.content_hash if rendered else "",
        changed=changed or [],
        actions=run.actions,
        counts=counts,
        excluded=excluded,
        timings=run.timings,
        duration_ms=int((time.monotonic() - run.started) * 1000),
        error_code=error_code,
        error=error[:8000],
    )
    if status != RevisionStatus.FAILED:
        GatewayState.objects.filter(site=run.site).update(
            applied=Greatest(F("applied"), run.generation), updated_at=timezone.now()
        )
    return revision


def _summary(rendered: Rendered, live: dict[str, Any] | None) -> str:
    before_routes = set(live.get("routes", [])) if live else set()
    before_ports = set(live.get("stream_ports", [])) if live else set()
    routes = set(rendered.route_names)
    ports = {f"{p}:{n}" for p, n in rendered.stream_ports}
    parts = []
    for label, now, before in (("routes", routes, before_routes), ("ports", ports, before_ports)):
        added, removed = len(now - before), len(before - now)
        if added or removed:
            parts.append(f"{label} +{added} -{removed}")
    return ", ".join(parts) or "no route or port changes"


def _apply(run: _Run) -> ConfigRevision:
    paths, options = run.paths, run.options
    with run.phase("load"):
        state = load_state(run.site)
    live = paths.live_manifest()
    live_files: dict[str, str] = (
        (live or {}).get("files", {}) if (live or {}).get("site") == run.site.slug else {}
    )
    live_ports = set((live or {}).get("stream_ports", [])) if live_files else set()
    nginx, dnsmasq = Nginx(paths, options), Dnsmasq(paths, options)
    use_nginx, use_dnsmasq = settings.GATEWAY_NGINX_ENABLED, settings.GATEWAY_DNSMASQ_ENABLED

    for _round in range(MAX_ROUNDS):
        try:
            with run.phase("render"):
                rendered = render(state, options, exclude=run.exclude)
        except (RenderError, UnsafeValue) as exc:
            raise ApplyFailed("render", f"the configuration cannot be rendered: {exc}") from exc
        hashes = file_hashes(rendered.files)
        changed = sorted(
            p for p, h in hashes.items() if live_files.get(p) != h and p != MANIFEST_FILE
        )
        unchanged = live_files and live and live.get("content_hash") == rendered.content_hash
        if unchanged and not run.force:
            _require_running(use_nginx and nginx.pid() is None, "nginx", paths.nginx_pid_file)
            _require_running(
                use_dnsmasq and dnsmasq.pid() is None, "dnsmasq", paths.dnsmasq_pid_file
            )
            if use_nginx and nginx.served() != rendered.content_hash:
                # The files are live but nginx serves something else (an apply died
                # between the swap and the reload): reload them, as a forced apply would.
                run.force = True
                run.actions.append("nginx served an older revision than the live files")
        if unchanged and not run.force:
            return _record(
                run,
                status=RevisionStatus.UNCHANGED,
                rendered=rendered,
                summary="nothing changed; nothing reloaded",
            )

        if use_nginx:
            with run.phase("bind_check"):
                blocked = _blocked_ports(rendered, live_ports, options)
            if blocked:
                run.blamed.update(blocked)
                run.exclude.update(blocked)
                continue

        stage = paths.staging / f"{run.generation:06d}-{rendered.content_hash[:12]}-{_round}"
        shutil.rmtree(stage, ignore_errors=True)
        manifest = {
            "site": run.site.slug,
            "generation": run.generation,
            "content_hash": rendered.content_hash,
            "files": hashes,
            "stream_ports": sorted(f"{p}:{n}" for p, n in rendered.stream_ports),
            "routes": rendered.route_names,
            "created_at": timezone.now().isoformat(),
        }
        with run.phase("write"):
            write_tree({**rendered.files, MANIFEST_FILE: json.dumps(manifest)}, stage)
        with run.phase("validate"):
            blamed = _validate(run, stage, rendered, use_nginx, use_dnsmasq)
        if blamed:
            shutil.rmtree(stage, ignore_errors=True)
            run.blamed.update(blamed)
            run.exclude.update(blamed)
            continue

        previous = paths.live_release()
        release = paths.releases / stage.name
        shutil.rmtree(release, ignore_errors=True)
        os.rename(stage, release)
        paths.point_current(release)
        try:
            with run.phase("reload"):
                bind_blamed = _reload(
                    run, rendered, changed, bool(live_files), nginx, dnsmasq, use_nginx, use_dnsmasq
                )
        except ApplyFailed:
            _roll_back(paths, previous, release)
            raise
        if bind_blamed:
            _roll_back(paths, previous, release)
            run.blamed.update(bind_blamed)
            run.exclude.update(bind_blamed)
            continue
        _prune(paths)
        return _record(
            run,
            status=RevisionStatus.APPLIED,
            rendered=rendered,
            changed=changed,
            summary=_summary(rendered, live if live_files else None),
        )
    raise ApplyFailed(
        "validate",
        f"still invalid after leaving out {len(run.exclude)} entries in "
        f"{MAX_ROUNDS} rounds; the live files are unchanged",
    )


def _require_running(missing: bool, name: str, pid_file: Path) -> None:
    if missing:
        raise ApplyFailed(
            "server_down", f"{name} is not running on the gateway host (no live PID in {pid_file})"
        )


def _blocked_ports(
    rendered: Rendered, live_ports: set[str], options: GatewayOptions
) -> dict[tuple[str, int], str]:
    blocked = {}
    for (protocol, port), mapping_id in rendered.stream_ports.items():
        if f"{protocol}:{port}" in live_ports:
            continue  # nginx itself holds it
        why = port_in_use(options.stream_bind, port, protocol)
        if why:
            blocked[("mapping", mapping_id)] = (
                f"{protocol.upper()} port {port} on {options.stream_bind} is in use on the "
                f"gateway host ({why})"
            )
    return blocked


def _validate(
    run: _Run, stage: Path, rendered: Rendered, use_nginx: bool, use_dnsmasq: bool
) -> dict[tuple[str, int], str]:
    """Blamed entries with the validator's words; raises when the error is not one entry's."""
    blamed: dict[tuple[str, int], str] = {}
    checks: list[tuple[str, Callable[[], tuple[bool, str]], re.Pattern[str]]] = []
    if use_nginx:
        checks.append(
            (
                "nginx -t",
                lambda: nginx_test(stage / "nginx" / "nginx.conf", stage / "nginx"),
                _NGINX_WHERE,
            )
        )
    if use_dnsmasq:
        checks.append(
            (
                "dnsmasq --test",
                lambda: dnsmasq_test(stage / "dnsmasq" / "dnsmasq.conf"),
                _DNSMASQ_WHERE,
            )
        )
    for name, check, where in checks:
        with run.phase(name):
            ok, output = check()
        if ok:
            continue
        owners = blame(output, rendered, stage, where)
        if not owners:
            raise ApplyFailed(
                "validate",
                f"{name} rejected the configuration; the live files keep serving:\n{output}",
            )
        blamed.update({owner: f"{name}: {why}" for owner, why in owners.items()})
    return blamed


def _reload(
    run: _Run,
    rendered: Rendered,
    changed: list[str],
    had_live: bool,
    nginx: Nginx,
    dnsmasq: Dnsmasq,
    use_nginx: bool,
    use_dnsmasq: bool,
) -> dict[tuple[str, int], str]:
    """Reload what changed; the mappings whose port nginx could not bind, if that failed."""
    nginx_changed = run.force or any(p.startswith("nginx/") for p in changed)
    if use_nginx and nginx_changed:
        if nginx.pid() is None and not had_live and not settings.GATEWAY_NGINX_RELOAD_COMMAND:
            run.actions.append("nginx not running: files installed for its start")
        else:
            log_offset = _size(run.paths.nginx_error_log)
            old_workers = nginx.workers()
            nginx.reload()
            signalled = time.monotonic()
            deadline = signalled + settings.GATEWAY_RELOAD_TIMEOUT
            while nginx.served() != rendered.content_hash:
                if time.monotonic() > deadline:
                    text = _read_from(run.paths.nginx_error_log, log_offset)
                    blamed = _bind_failures(text, rendered)
                    if blamed:
                        return blamed
                    raise ApplyFailed(
                        "reload",
                        "nginx did not load the new configuration within "
                        f"{settings.GATEWAY_RELOAD_TIMEOUT:.0f} s; its log "
                        f"says:\n{text[-2000:] or '(nothing)'}",
                    )
                time.sleep(0.01)
            # A new worker answered; the old ones may still accept for a moment, until
            # they have seen the master's QUIT. Served only once none of them can.
            run.timings["nginx serving"] = round(time.monotonic() - signalled, 4)
            while not all(_retired(p) for p in old_workers) and time.monotonic() < deadline:
                time.sleep(0.005)
            run.timings["nginx old workers retired"] = round(time.monotonic() - signalled, 4)
            run.actions.append("nginx reloaded")
    if use_dnsmasq:
        # Forced: a SIGHUP, not a restart (DNS and DHCP would pause for nothing).
        main_changed = "dnsmasq/dnsmasq.conf" in changed
        hosts_changed = run.force or any(
            p in changed for p in ("dnsmasq/hosts", "dnsmasq/dhcp-hosts")
        )
        running = dnsmasq.pid() is not None or bool(settings.GATEWAY_DNSMASQ_RESTART_COMMAND)
        if (main_changed or hosts_changed) and not running and not had_live:
            run.actions.append("dnsmasq not running: files installed for its start")
        elif main_changed:
            dnsmasq.restart()
            run.actions.append("dnsmasq restarted (its main configuration changed)")
        elif hosts_changed:
            dnsmasq.reload()
            run.actions.append("dnsmasq re-read hosts and reservations (SIGHUP)")
    return {}


def _bind_failures(text: str, rendered: Rendered) -> dict[tuple[str, int], str]:
    by_port = {port: mid for (_, port), mid in rendered.stream_ports.items()}
    blamed = {}
    for m in _BIND_FAILED.finditer(text):
        mid = by_port.get(int(m["port"]))
        if mid is not None:
            blamed[("mapping", mid)] = f"nginx could not listen on {m['addr']}:{m['port']}: {m[0]}"
    return blamed


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _read_from(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            return fh.read().decode(errors="replace")
    except OSError:
        return ""


def _roll_back(paths: GatewayPaths, previous: Path | None, failed: Path) -> None:
    if previous is not None and previous.is_dir():
        paths.point_current(previous)
    shutil.rmtree(failed, ignore_errors=True)


def _prune(paths: GatewayPaths) -> None:
    keep = max(1, int(settings.GATEWAY_KEEP_RELEASES))
    live = paths.live_release()
    releases = sorted(
        (p for p in paths.releases.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime
    )
    for old in releases[:-keep]:
        if old != live:
            shutil.rmtree(old, ignore_errors=True)
    for leftover in paths.staging.iterdir():
        shutil.rmtree(leftover, ignore_errors=True)


# -- bootstrap, rendering to a directory, waiting ---------------------------------------------------
def install_bootstrap(paths: GatewayPaths, options: GatewayOptions, *, fresh: bool = False) -> None:
    """A minimal valid configuration (no site yet), so the servers can start.

    `fresh` installs it even over a live release: for servers about to start with the
    current options, never with what an earlier run rendered (other ports, say).
    """
    with paths.locked():
        paths.ensure(options.acme_dir)
        if paths.live_release() is not None and not fresh:
            return
        rendered = render(bootstrap_state(), options)
        release = paths.releases / "000000-bootstrap"
        shutil.rmtree(release, ignore_errors=True)
        manifest = {
            "site": "",
            "generation": 0,
            "content_hash": rendered.content_hash,
            "files": file_hashes(rendered.files),
            "stream_ports": [],
            "routes": [],
        }
        write_tree({**rendered.files, MANIFEST_FILE: json.dumps(manifest)}, release)
        paths.point_current(release)


def render_to_directory(
    site: Site, out: Path, *, options: GatewayOptions | None = None
) -> Rendered:
    """A complete, self-contained configuration in `out` (its paths point into `out`)."""
    options = options or GatewayOptions.from_settings()
    options = GatewayOptions(**{**options.__dict__, "root": out.resolve(), "acme_dir": ""})
    rendered = render(load_state(site), options)
    write_tree(rendered.files, out)
    for d in (out / "run" / "logs", out / "run" / "tmp", out / "acme"):
        d.mkdir(parents=True, exist_ok=True)
    return rendered


def wait_for_apply(
    site: Site,
    generation: int,
    *,
    timeout: float | None = None,
    on_poll: Callable[[], None] | None = None,
) -> ConfigRevision | None:
    """Block until a successful apply covers `generation`; raise if one covering it failed."""
    timeout = settings.GATEWAY_APPLY_TIMEOUT if timeout is None else timeout
    deadline = time.monotonic() + timeout
    while True:
        applied = (
            GatewayState.objects.filter(site=site).values_list("applied", flat=True).first() or 0
        )
        if applied >= generation:
            return (
                ConfigRevision.objects.filter(site=site, generation__gte=generation)
                .exclude(status=RevisionStatus.FAILED)
                .order_by("id")
                .first()
            )
        failed = (
            ConfigRevision.objects.filter(
                site=site, generation__gte=generation, status=RevisionStatus.FAILED
            )
            .order_by("-id")
            .first()
        )
        if failed is not None:
            message = f"the gateway of {site.name} could not apply the change: {failed.error}"
            if failed.error_code in TRANSIENT_ERRORS:
                raise UpstreamUnavailable(message, code="gateway_unavailable", revision=failed.pk)
            raise UpstreamError(message, code="gateway_failed", revision=failed.pk)
        if time.monotonic() > deadline:
            raise UpstreamUnavailable(
                f"the gateway of {site.name} has not applied the change within {timeout:.0f} s; "
                f"is its worker (queue gateway.{site.slug}) running?",
                code="gateway_timeout",
            )
        if on_poll:
            on_poll()
        time.sleep(0.05)


# -- a private gateway on this machine: the demo, the tests, the bench ------------------------------
def _invoking_user() -> str:
    """The user nginx's and dnsmasq's workers run as in a private gateway.

    Started as root, both drop their workers to `nobody`, who cannot walk into a
    checkout under a 0700 directory (root's home, any `mktemp -d`): names did not
    resolve and nginx's own error pages answered 403. Keeping the invoking user is the
    simplest fix that needs no directory widened; it binds loopback high ports only.
    Started as anyone else, no switch happens and none is asked for.
    """
    return pwd.getpwuid(os.geteuid()).pw_name if os.geteuid() == 0 else ""


class LocalGateway:
    """nginx and dnsmasq on loopback high ports in a private directory, with a test certificate.

    `settings` holds the gateway settings it chose (typed), `env` the same as environment
    variables for the worker processes. Servers are started daemonised, each from a
    configuration rendered for the ports chosen now, and stopped by the PIDs in their
    pid files; a start that fails stops what it started.
    """

    def __init__(
        self,
        root: Path,
        *,
        domains: list[str],
        stream_bind: str = "127.0.0.1",
        nginx: bool = True,
        dnsmasq: bool = True,
        ports: dict[str, int] | None = None,
        **overrides: Any,
    ) -> None:
        from portal.procs import free_port

        self.root = root
        ports = ports or {}
        port = {k: ports.get(k) or free_port() for k in ("http", "https", "status", "dns")}
        self.ports = port
        self.tls_dir = root / "tls"
        self.settings: dict[str, Any] = {
            "GATEWAY_DIR": str(root / "gw"),
            "GATEWAY_NGINX_ENABLED": nginx and find_binary("nginx") is not None,
            "GATEWAY_DNSMASQ_ENABLED": dnsmasq and find_binary("dnsmasq") is not None,
            "GATEWAY_HTTP_LISTEN": [f"127.0.0.1:{port['http']}"],
            "GATEWAY_HTTPS_LISTEN": [f"127.0.0.1:{port['https']}"],
            "GATEWAY_STATUS_LISTEN": f"127.0.0.1:{port['status']}",
            "GATEWAY_STREAM_BIND": stream_bind,
            "GATEWAY_DNS_LISTEN": ["127.0.0.1"],
            "GATEWAY_DNS_PORT": port["dns"],
            "GATEWAY_DHCP_ENABLED": False,
            "GATEWAY_TLS_CERTIFICATE": str(self.tls_dir / "fullchain.pem"),
            "GATEWAY_TLS_CERTIFICATE_KEY": str(self.tls_dir / "privkey.pem"),
            "GATEWAY_NGINX_PID_FILE": "",
            "GATEWAY_DNSMASQ_PID_FILE": "",
            "GATEWAY_NGINX_RELOAD_COMMAND": "",
            "GATEWAY_DNSMASQ_RELOAD_COMMAND": "",
            "GATEWAY_DNSMASQ_RESTART_COMMAND": "",
            "GATEWAY_WORKER_USER": _invoking_user(),
            **overrides,
        }
        self.domains = domains
        self.started = False

    @property
    def env(self) -> dict[str, str]:
        def text(v: Any) -> str:
            if isinstance(v, bool):
                return "true" if v else "false"
            return ",".join(v) if isinstance(v, list) else str(v)

        return {k: text(v) for k, v in self.settings.items()}

    @property
    def ca(self) -> Path:
        return self.tls_dir / "ca.pem"

    def apply_settings(self) -> None:
        """Make this process use the private gateway (workers get `env`)."""
        for key, value in self.settings.items():
            setattr(settings, key, value)

    def paths(self) -> GatewayPaths:
        return GatewayPaths.from_settings(Path(self.settings["GATEWAY_DIR"]))

    def servers(self) -> tuple[Nginx, Dnsmasq]:
        paths = self.paths()
        options = GatewayOptions.from_settings(paths.root)
        return Nginx(paths, options), Dnsmasq(paths, options)

    def pids(self) -> dict[str, int]:
        """The PIDs of the servers running now (nginx's master, dnsmasq)."""
        nginx, dnsmasq = self.servers()
        found = {"nginx": nginx.pid(), "dnsmasq": dnsmasq.pid()}
        return {name: pid for name, pid in found.items() if pid}

    def start(self) -> LocalGateway:
        from .tls import make_wildcard_certificate

        self.root.mkdir(parents=True, exist_ok=True)
        if not (self.tls_dir / "fullchain.pem").exists():
            make_wildcard_certificate(self.tls_dir, self.domains)
        self.apply_settings()
        paths = self.paths()
        options = GatewayOptions.from_settings(paths.root)
        install_bootstrap(paths, options, fresh=True)
        try:
            if settings.GATEWAY_NGINX_ENABLED:
                Nginx(paths, options).start()
            if settings.GATEWAY_DNSMASQ_ENABLED:
                Dnsmasq(paths, options).start()
        except BaseException:
            self.stop()
            raise
        self.started = True
        return self

    def stop(self) -> None:
        for server in self.servers():
            server.stop()
        self.started = False
