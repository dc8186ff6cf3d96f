"""The checks around a swap: what the validators blame, which ports are taken, the reload.

An error line of `nginx -t` or `dnsmasq --test` that points at a staged file and line is
traced to the entry that rendered it; a port nginx could not bind is traced to its
mapping. Those entries are left out on the next round; anything else fails the apply.
"""

from __future__ import annotations

import functools
import re
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings

from portal.errors import ApplyFailed, ErrorCode

from ..models import PortProtocol
from ..render import GatewayOptions, Rendered, instance_of
from .servers import Dnsmasq, Nginx, dnsmasq_test, nginx_test, worker_retired

if TYPE_CHECKING:
    from .apply import ApplyRun

_NGINX_WHERE = re.compile(r"\[emerg\] .*? in (?P<path>/\S+):(?P<line>\d+)")
_DNSMASQ_WHERE = re.compile(r"at line (?P<line>\d+) of (?P<path>/\S+)")
_BIND_FAILED = re.compile(r"bind\(\) to (?P<addr>\S+):(?P<port>\d+) failed")


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
    kind = socket.SOCK_DGRAM if protocol == PortProtocol.UDP else socket.SOCK_STREAM
    with socket.socket(family, kind) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def blocked_ports(
    rendered: Rendered, live_ports: set[str], options: GatewayOptions
) -> dict[tuple[str, int], str]:
    """The mappings whose new port (one nginx does not hold yet) cannot be listened on."""
    blocked = {}
    for name, ((protocol, port), mapping_id) in zip(
        rendered.port_names, rendered.stream_ports.items(), strict=True
    ):
        if name in live_ports:
            continue  # nginx itself holds it
        why = port_in_use(options.stream_bind, port, protocol)
        if why:
            blocked[("mapping", mapping_id)] = (
                f"{protocol.upper()} port {port} on {options.stream_bind} is in use on the "
                f"gateway host ({why})"
            )
    return blocked


@dataclass(frozen=True)
class _Validator:
    name: str
    check: Callable[[], tuple[bool, str]]
    where: re.Pattern[str]


def _timed(check: Callable[[], tuple[bool, str]]) -> tuple[bool, str, float]:
    started = time.monotonic()
    ok, output = check()
    return ok, output, time.monotonic() - started


def validate_stage(
    run: ApplyRun,
    stage: Path,
    rendered: Rendered,
    *,
    nginxes: list[Nginx],
    dnsmasq: bool,
    live_ports: set[str] | None = None,
) -> dict[tuple[str, int], str]:
    """Blamed entries with the validator's words; raises when an error is not one entry's.

    `nginx -t` of each nginx in `nginxes` (the HTTP one, stream shards) and `dnsmasq --test`
    run at the same time, each in its own process: the apply waits for the slowest, not
    for their sum. The bind check of new stream ports (`live_ports` given: the ports the
    shards already hold) runs first, beside `dnsmasq --test` only. Every validator is
    waited for before this returns or raises. Each has its timing; "nginx validation" is
    the longest of the nginx ones (what the apply waited for).
    """
    validators = [
        _Validator(
            "nginx -t" if n.shard is None else f"nginx -t {n.name}",
            functools.partial(nginx_test, stage / "nginx" / n.conf.name, stage / "nginx"),
            _NGINX_WHERE,
        )
        for n in nginxes
    ]
    if dnsmasq:
        validators.append(
            _Validator(
                "dnsmasq --test",
                lambda: dnsmasq_test(stage / "dnsmasq" / "dnsmasq.conf"),
                _DNSMASQ_WHERE,
            )
        )
    blamed: dict[tuple[str, int], str] = {}
    with ThreadPoolExecutor(max_workers=max(1, len(validators))) as pool:
        # dnsmasq's first; nginx's after the bind check, which would otherwise race with
        # `nginx -t`'s own binds of the same ports and see them taken.
        running = {
            v.name: pool.submit(_timed, v.check) for v in validators if v.where is _DNSMASQ_WHERE
        }
        if live_ports is not None:
            with run.phase("bind_check"):
                blamed.update(blocked_ports(rendered, live_ports, run.options))
        running |= {
            v.name: pool.submit(_timed, v.check) for v in validators if v.name not in running
        }
        results = [(v, running[v.name].result()) for v in validators]  # reported in order
    refused = []
    longest = 0.0
    for v, (ok, output, took) in results:
        run.timings[v.name] = round(run.timings.get(v.name, 0.0) + took, 4)  # every round
        if v.where is _NGINX_WHERE:
            longest = max(longest, took)
        if ok:
            continue
        owners = blame(output, rendered, stage, v.where)
        if not owners:
            refused.append(
                f"{v.name} rejected the configuration; the live files keep serving:\n{output}"
            )
        blamed.update({owner: f"{v.name}: {why}" for owner, why in owners.items()})
    if nginxes:
        run.timings["nginx validation"] = round(
            run.timings.get("nginx validation", 0.0) + longest, 4
        )
    if refused:
        raise ApplyFailed(code=ErrorCode.VALIDATE, message="\n".join(refused))
    return blamed


def reload_servers(
    run: ApplyRun,
    rendered: Rendered,
    changed: list[str],
    live_files: dict[str, str],
    nginxes: list[Nginx],
    dnsmasq: Dnsmasq,
    use_nginx: bool,
    use_dnsmasq: bool,
) -> dict[tuple[str, int], str]:
    """Reload what changed; the mappings whose port a nginx could not bind, if that failed.

    Every nginx whose files changed must run (or be new: nothing live yet, or a shard
    whose file the live release lacks, as after an upgrade: its files are installed for
    its start) before any is signalled: then all are signalled and then waited for, so
    their reloads (each with the master's 100 ms before its old workers quit) overlap.
    """
    had_live = bool(live_files)
    touched = {instance_of(p) for p in changed}
    to_signal = []
    for nginx in nginxes if use_nginx else []:
        if not (run.force or nginx.name in touched):
            continue
        command = nginx.shard is None and settings.GATEWAY_NGINX_RELOAD_COMMAND
        if nginx.pid() is None and not command:
            new_shard = nginx.shard is not None and f"nginx/{nginx.conf.name}" not in live_files
            if not had_live or new_shard:
                run.actions.append(f"{nginx.label} not running: files installed for its start")
                continue
            nginx.require_running()  # raises: no nginx is signalled for a half-done apply
        to_signal.append(nginx)
    signalled = []
    for nginx in to_signal:
        log_offset = _size(nginx.error_log)
        old_workers = nginx.workers()
        nginx.reload()
        signalled.append((nginx, old_workers, log_offset))
    blamed: dict[tuple[str, int], str] = {}
    for nginx, old_workers, log_offset in signalled:
        blamed.update(_wait_for_reload(run, rendered, nginx, old_workers, log_offset))
    if blamed:
        return blamed
    run.actions.extend(f"{nginx.label} reloaded" for nginx, _, _ in signalled)
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


def _wait_for_reload(
    run: ApplyRun, rendered: Rendered, nginx: Nginx, old_workers: list[int], log_offset: int
) -> dict[tuple[str, int], str]:
    """Until no old worker accepts and the nginx serves its new revision; the mappings
    whose port it could not bind, if it did not load the files in time.

    The old workers accept until the master's QUIT (it sends it 100 ms after starting the
    new ones, whose first answers are mostly taken by the old ones meanwhile): they are
    watched first, in /proc, and the status server asked once they are gone, rather than
    asked every few milliseconds, which took CPU from the master while it parsed.
    """
    signalled = time.monotonic()
    deadline = signalled + settings.GATEWAY_RELOAD_TIMEOUT
    while not all(worker_retired(p) for p in old_workers) and time.monotonic() < deadline:
        time.sleep(0.005)
    run.timings[f"{nginx.name} old workers retired"] = round(time.monotonic() - signalled, 4)
    while nginx.served() != rendered.revisions[nginx.name]:
        if time.monotonic() > deadline:
            text = _read_from(nginx.error_log, log_offset)
            blamed = bind_failures(text, rendered)
            if blamed:
                return blamed
            raise ApplyFailed(
                code=ErrorCode.RELOAD,
                message=f"{nginx.label} did not load the new configuration within "
                f"{settings.GATEWAY_RELOAD_TIMEOUT:.0f} s; its log "
                f"says:\n{text[-2000:] or '(nothing)'}",
            )
        time.sleep(0.01)
    run.timings[f"{nginx.name} serving"] = round(time.monotonic() - signalled, 4)
    return {}


def bind_failures(text: str, rendered: Rendered) -> dict[tuple[str, int], str]:
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
