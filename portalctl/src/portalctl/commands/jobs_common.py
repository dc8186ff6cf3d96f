"""What is said when a job ends well."""

from __future__ import annotations

from typing import Any

VERBS = {
    "create": "is running",
    "start": "is running",
    "restart": "is running",
    "stop": "is stopped",
    "delete": "is deleted",
    "resize": "is resized",
    "access": "has its access updated",
}


def job_done_line(job: dict[str, Any], c: dict[str, Any]) -> str:
    done = VERBS.get(str(job.get("kind")), f"{job.get('kind')} done")
    line = f"{c.get('hostname')} {done}"
    if job.get("kind") in ("create", "start", "restart"):
        line += f": VMID {c.get('vmid')} on {c.get('node')}, IP {c.get('ip')}, {c.get('url')}"
    return line
