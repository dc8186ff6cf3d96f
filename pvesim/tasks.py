"""Worker tasks: UPIDs, task records and the generator-based workers.

A worker is a generator that yields how many (simulated) seconds it wants
to sleep; the scheduler in :class:`pvesim.state.SimState` resumes it when the
clock has moved that far. Raising :class:`~pvesim.errors.TaskFailure` (or an
ApiError, as a ``die`` inside a Proxmox worker would) ends the task with that
text as its exit status.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pvesim.errors import InjectedFailure, die

if TYPE_CHECKING:
    from pvesim.faults import TaskFault
    from pvesim.state import SimState

Worker = Generator[float, None, None]
WorkerBody = Callable[["WorkerContext"], Worker]

UPID_RE = re.compile(
    r"^UPID:([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):"
    r"([0-9A-Fa-f]{8}):([^:\s]+):([^:\s]*):([^:\s]+):$"
)


def make_upid(
    node: str, pid: int, pstart: int, starttime: int, wtype: str, wid: str, user: str
) -> str:
    return f"UPID:{node}:{pid:08X}:{pstart:08X}:{starttime:08X}:{wtype}:{wid}:{user}:"


def decode_upid(upid: str) -> dict[str, Any] | None:
    """PVE::Tools::upid_decode; None when it does not parse."""
    m = UPID_RE.match(upid)
    if not m:
        return None
    return {
        "node": m.group(1),
        "pid": int(m.group(3), 16),
        "pstart": int(m.group(4), 16),
        "starttime": int(m.group(5), 16),
        "type": m.group(6),
        "id": m.group(7),
        "user": m.group(8),
    }


@dataclass
class Task:
    upid: str
    node: str
    pid: int
    pstart: int
    starttime: int
    type: str
    id: str
    user: str
    status: str = "running"
    exitstatus: str | None = None
    endtime: int | None = None
    log: list[str] = field(default_factory=list)
    warnings: int = 0

    def status_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "upid": self.upid,
            "node": self.node,
            "pid": self.pid,
            "pstart": self.pstart,
            "starttime": self.starttime,
            "type": self.type,
            "id": self.id,
            "user": self.user,
            "status": self.status,
        }
        if "!" in self.user:
            data["user"], data["tokenid"] = self.user.split("!", 1)
        if self.status == "stopped":
            data["exitstatus"] = self.exitstatus
        return data

    def list_json(self) -> dict[str, Any]:
        data = {
            k: v
            for k, v in self.status_json().items()
            if k not in ("exitstatus", "status", "tokenid")
        }
        data["user"] = self.user
        if self.status == "stopped":
            data["endtime"] = self.endtime
            data["status"] = self.exitstatus
        return data

    def to_json(self) -> dict[str, Any]:
        return dict(vars(self))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Task:
        return cls(**data)


class WorkerContext:
    """What a worker body sees: its task, the state, logging and sleeping."""

    def __init__(
        self, state: SimState, task: Task, fault: TaskFault | None, duration: float
    ) -> None:
        self.state = state
        self.task = task
        self.fault = fault
        self.duration = duration
        self.flocks: set[int] = set()
        self._fault_checked = False

    def log(self, line: str) -> None:
        self.task.log.extend(line.split("\n"))

    def warn(self, line: str) -> None:
        self.task.warnings += 1
        self.log(f"WARN: {line}")

    def work(self, fraction: float = 1.0, seconds: float | None = None) -> Worker:
        """Sleep for a share of this task type's duration.

        The first call is where an injected failure strikes, so every worker
        has already done its synchronous part (and set its locks) by then.
        """
        delay = (self.duration if seconds is None else seconds) * fraction
        if delay > 0:
            yield delay
        if not self._fault_checked:
            self._fault_checked = True
            if self.fault is not None and not self.fault.warning:
                raise InjectedFailure(self.fault.message)

    def sleep(self, seconds: float) -> Worker:
        if seconds > 0:
            yield seconds

    def acquire_flock(self, vmid: int) -> Worker:
        """lock_config inside a worker: wait (in task time) for the flock."""
        waited = 0.0
        while vmid in self.state.flocks and self.state.flocks[vmid] != self.task.upid:
            if waited >= self.state.lock_timeout:
                raise die(f"can't lock file '/run/lock/lxc/pve-config-{vmid}.lock' - got timeout")
            yield 0.05
            waited += 0.05
        self.hold_flock(vmid)

    def hold_flock(self, vmid: int) -> None:
        """Take the CT's config flock for the rest of the task (lock_config)."""
        self.state.flocks[vmid] = self.task.upid
        self.flocks.add(vmid)

    def release_flock(self, vmid: int) -> None:
        if self.state.flocks.get(vmid) == self.task.upid:
            del self.state.flocks[vmid]
        self.flocks.discard(vmid)
        self.state.cond.notify_all()
