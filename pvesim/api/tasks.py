"""/nodes/{node}/tasks: list, status, log, stop (pve-manager API2/Tasks.pm)."""

from __future__ import annotations

from typing import Any

from pvesim import apidefs
from pvesim.errors import param_error
from pvesim.router import Ctx, route
from pvesim.schema import split_list
from pvesim.tasks import Task, decode_upid


def _task_for(ctx: Ctx, p: dict[str, Any], audit_priv: str = "Sys.Audit") -> Task:
    upid, node = p["upid"], p["node"]
    if decode_upid(upid) is None:
        raise param_error({"upid": "unable to parse worker upid"})
    task = ctx.state.tasks.get(upid)
    if task is None or task.node != node:
        raise param_error({"upid": "no such task"})
    if ctx.authuser != task.user:
        ctx.check(f"/nodes/{node}", [audit_priv])
    return task


def _status_class(task: Task) -> str:
    if task.status == "running":
        return "unknown"
    if task.exitstatus == "OK":
        return "ok"
    if task.exitstatus and task.exitstatus.startswith("WARNINGS"):
        return "warning"
    return "error"


@route("GET", "/nodes/{node}/tasks", params=apidefs.TASK_LIST, proxy=True)
def node_tasks(ctx: Ctx, p: dict[str, Any]) -> list[dict[str, Any]]:
    state = ctx.state
    node = p["node"]
    auditor = ctx.check(f"/nodes/{node}", ["Sys.Audit"], noerr=True)
    source = p.get("source", "archive")
    statuses = {s.lower() for s in split_list(p["statusfilter"])} if p.get("statusfilter") else None
    # Newest first, like reading the task index backwards; ties keep the
    # reverse creation order.
    mine = [t for t in state.tasks.values() if t.node == node][::-1]
    tasks = sorted(
        mine, key=lambda t: (t.status != "running", -(t.endtime or t.starttime), -t.starttime)
    )
    start, limit = p.get("start") or 0, p.get("limit") or 50
    count = 0
    out: list[dict[str, Any]] = []
    for task in tasks:
        if source == "archive" and task.status == "running":
            continue
        if source == "active" and task.status != "running":
            continue
        if not (auditor or task.user == ctx.authuser):
            continue
        if p.get("userfilter") and p["userfilter"].lower() not in task.user.lower():
            continue
        if p.get("typefilter") and task.type != p["typefilter"]:
            continue
        if p.get("vmid") is not None and task.id != str(p["vmid"]):
            continue
        if p.get("errors") and task.exitstatus == "OK":
            continue
        if statuses and _status_class(task) not in statuses:
            continue
        if p.get("since") is not None and task.starttime < p["since"]:
            continue
        if p.get("until") is not None and task.starttime > p["until"]:
            continue
        count += 1
        if count <= start or len(out) >= limit:
            continue
        out.append(task.list_json())
    ctx.total = count
    return out


@route("GET", "/nodes/{node}/tasks/{upid}", params=apidefs.TASK_ITEM)
def upid_index(ctx: Ctx, p: dict[str, Any]) -> list[dict[str, str]]:
    return [{"name": "log"}, {"name": "status"}]


@route("GET", "/nodes/{node}/tasks/{upid}/status", params=apidefs.TASK_ITEM, proxy=True)
def task_status(ctx: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    return _task_for(ctx, p).status_json()


@route("GET", "/nodes/{node}/tasks/{upid}/log", params=apidefs.TASK_LOG, proxy=True)
def task_log(ctx: Ctx, p: dict[str, Any]) -> list[dict[str, Any]]:
    task = _task_for(ctx, p)
    # Perl's `$param->{limit} || 50`: 0 means the default too.
    start, limit = p.get("start") or 0, p.get("limit") or 50
    lines = task.log or ["no content"]
    out = [{"n": i + 1, "t": line} for i, line in enumerate(lines) if i >= start][:limit]
    ctx.total = len(lines)
    return out


@route("DELETE", "/nodes/{node}/tasks/{upid}", params=apidefs.TASK_ITEM, proxy=True)
def stop_task(ctx: Ctx, p: dict[str, Any]) -> None:
    task = _task_for(ctx, p, audit_priv="Sys.Modify")
    if task.status == "running":
        ctx.state.abort_worker(task.upid)
    return None
