"""A deployment's runtime log: the journal of its app's unit, read over SSH on demand
(LaunchPad). Nothing is copied into the portal; each read asks the container.

The env's values are masked here as in the deploy's own log: an app that prints its
configuration does not show its secrets to whoever reads the log.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import time
from collections.abc import Iterator

from django.conf import settings

from portal.errors import InvalidState, UpstreamUnavailable

from .deploy_script import logs_command, unit_names
from .models import ContainerStatus, Deployment
from .remote import LINE_MAX, Remote

MAX_LINES = 2000
KEEPALIVE = 15.0  # seconds between SSE comments while the app is quiet
MASK = "***"


def _remote(deployment: Deployment) -> Remote:
    container = deployment.container
    if container is None or container.status != ContainerStatus.RUNNING:
        raise InvalidState(f"{deployment.name} has no running container to read the log from")
    return Remote.for_container(container.ip, container_id=container.pk)


def env_masker(deployment: Deployment) -> Masker:
    """Masks each env value (of 3 characters or more) in a line: the deploy's log and the
    runtime log show no value an app printed."""
    values = [v for v in json.loads(deployment.env or "{}").values() if len(v) >= 3]
    return Masker(sorted(values, key=len, reverse=True))


class Masker:
    def __init__(self, secrets: list[str]) -> None:
        self.secrets = secrets  # longest first: no part of one shows through another's mask

    def __call__(self, line: str) -> str:
        for value in self.secrets:
            line = line.replace(value, MASK)
        return line


def _command(deployment: Deployment, lines: int, *, follow: bool) -> str:
    return logs_command(unit_names(deployment.app or {}), lines=lines, follow=follow)


def app_log(deployment: Deployment, *, lines: int = 200) -> list[str]:
    """The last `lines` lines of the app's log."""
    lines = max(1, min(lines, MAX_LINES))
    remote, mask = _remote(deployment), env_masker(deployment)
    out: list[str] = []
    code = remote.run(
        _command(deployment, lines, follow=False), on_line=lambda s: out.append(mask(s)), timeout=30
    )
    if code == 255:
        raise UpstreamUnavailable(f"{deployment.name} did not answer over SSH")
    return out


def app_log_events(deployment: Deployment, *, lines: int = 200) -> Iterator[str]:
    """The app's log as Server-Sent Events (`event: line`), followed until the stream's
    time limit; the SSH session ends with the stream, however it ends."""
    lines = max(1, min(lines, MAX_LINES))
    remote, mask = _remote(deployment), env_masker(deployment)
    proc = subprocess.Popen(
        remote.argv(_command(deployment, lines, follow=True)),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + settings.EVENT_STREAM_MAX_SECONDS
    pending = b""
    try:
        yield "retry: 3000\n\n"
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if not selector.select(timeout=KEEPALIVE):
                    yield ": keepalive\n\n"
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                *done, pending = (pending + chunk).split(b"\n")
                for raw in done:
                    text = mask(raw.decode(errors="replace").rstrip("\r")[:LINE_MAX])
                    yield f"event: line\ndata: {text}\n\n"
        yield "event: end\ndata: {}\n\n"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
