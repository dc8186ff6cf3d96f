"""Processes by PID, read from /proc: alive (not a zombie), process-group members, killing."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path


def stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state is [0], ppid [1],
    pgrp [2]); None when there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    return text.rsplit(")", 1)[1].split()


def alive(pid: int) -> bool:
    fields = stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group."""
    out = []
    for pid in all_pids():
        fields = stat_fields(pid)
        if fields is not None and fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
            out.append(pid)
    return out


def unit_alive(pid: int) -> bool:
    """A unit's main process, or anything left in its process group, still runs."""
    return alive(pid) or bool(group_members(pid))


def signal_unit(pid: int, sig: int) -> None:
    """Signal a unit's process group (it is the leader of its own) and the PID itself."""
    for send in (os.killpg, os.kill):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            send(pid, sig)


def stop_unit(pid: int, timeout: float) -> bool:
    """SIGTERM, wait up to ``timeout``, then SIGKILL; True if it ended within the timeout."""
    signal_unit(pid, signal.SIGTERM)
    if wait_gone(pid, timeout):
        return True
    signal_unit(pid, signal.SIGKILL)
    wait_gone(pid, 5.0)
    return False


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while unit_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True
