"""Faults that tests switch on through :class:`pvesim.testing.SimAdmin`.

Faults are deliberately not persisted: a restarted simulator is healthy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RequestFault:
    method: str  # "*" matches every method
    path_regex: str
    count: int
    status: int
    reason: str
    # > 0: hold the call this long, then answer it normally (status 0) or with the status
    delay: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        return (self.method in ("*", method)) and re.search(self.path_regex, path) is not None


@dataclass
class TaskFault:
    count: int
    message: str
    warning: bool = False  # end with "WARNINGS: n" instead of an error


@dataclass
class Faults:
    # node -> the 595 reason its proxied calls answer with
    offline: dict[str, str] = field(default_factory=dict)
    quorum: bool = True
    task_faults: dict[str, list[TaskFault]] = field(default_factory=dict)
    request_faults: list[RequestFault] = field(default_factory=list)
    latency: float = 0.0
    # calls held by a delay fault so far (tests wait on it to act while one is held)
    delayed: int = 0

    def reset(self) -> None:
        self.offline.clear()
        self.quorum = True
        self.task_faults.clear()
        self.request_faults.clear()
        self.latency = 0.0
        self.delayed = 0

    def take_request_fault(self, method: str, path: str) -> RequestFault | None:
        for fault in self.request_faults:
            if fault.count > 0 and fault.matches(method, path):
                fault.count -= 1
                if fault.count == 0:
                    self.request_faults.remove(fault)
                return fault
        return None

    def take_task_fault(self, task_type: str) -> TaskFault | None:
        queue = self.task_faults.get(task_type)
        if not queue:
            return None
        fault = queue[0]
        fault.count -= 1
        if fault.count <= 0:
            queue.pop(0)
        return TaskFault(1, fault.message, fault.warning)

    def to_json(self) -> dict[str, Any]:
        return {
            "offline": dict(self.offline),
            "quorum": self.quorum,
            "task_faults": {
                k: [vars(f).copy() for f in v] for k, v in self.task_faults.items() if v
            },
            "request_faults": [vars(f).copy() for f in self.request_faults],
            "latency": self.latency,
            "delayed": self.delayed,
        }
