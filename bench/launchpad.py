"""LaunchPad: from a push to its URL answering, against Proxmox's own time plus the install.

The stack is the real one, on loopback in a private directory: a Redis, the simulator
with guest emulation (a CT that runs has a real sshd on its 127.15.T.x address and the
app really listens there), the gateway's nginx and dnsmasq (LocalGateway; the
simulator's DHCP reservations are dnsmasq's dhcp-hosts), one Celery worker (jobs and
applies), and gunicorn serving the REST API. Every Proxmox task takes
BENCH_TASK_SECONDS (1.0); the app is the example app (deploy/launchpad/example) in a
git repository of its own, whose install command sleeps BENCH_INSTALL_SLEEP (2) seconds
first. The install command's own time is measured once, locally, before the rounds.

Each of BENCH_ROUNDS (3) rounds, on a branch of its own:
1. first push: POST /api/v1/deployments/ with the archive, until
   https://<name>.<domain>/ through nginx serves the commit. Ideal: the Proxmox tasks
   the push caused (read from the simulator's task list) plus the install time; the
   overhead (measured - ideal) should be under 2 s.
2. update in place: a new commit, pushed the same way. Target: under install + 1 s.
3. the previous system's update: DELETE the deployment, wait for its job, push the new
   commit as a new deployment (a new container). Set against 2 as a ratio.
The job's steps (mean seconds) show where the time goes.

    python -m bench launchpad
"""

from __future__ import annotations

import io
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bench._stack import DOMAIN, Stack, missing_binaries, private_dirs, start_stack
from tests.fixtures.launchpad import ExampleRepo

TASK_SECONDS = float(os.environ.get("BENCH_TASK_SECONDS", "1.0"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
INSTALL_SLEEP = float(os.environ.get("BENCH_INSTALL_SLEEP", "2"))
EXAMPLE = Path(__file__).resolve().parent.parent / "deploy" / "launchpad" / "example"
INSTALL = f"sleep {INSTALL_SLEEP:g} && python3 app.py install"
APP = {
    "install": INSTALL,
    "start": "python3 app.py",
    "port": 8000,
}
POLL = 0.05  # seconds between the client's looks at the URL (and at a job)


@dataclass
class Push:
    """One timed push (or delete-and-push), to its URL serving the commit."""

    seconds: float
    job_ids: list[str]
    proxmox: dict[str, int] = field(default_factory=dict)  # task type -> count
    request: float = 0.0  # the POST's own round trip
    tail: float = 0.0  # URL answering, after the job's recorded end (may be negative)

    @property
    def proxmox_seconds(self) -> float:
        return sum(self.proxmox.values()) * TASK_SECONDS


@dataclass
class Round:
    first: Push
    update: Push
    recreate: Push
    steps_first: dict[str, float]
    steps_update: dict[str, float]


# -- the client's side: push, look at the URL ------------------------------------------------
def _fetch(stack: Stack, name: str) -> str:
    """GET https://<name>.<domain>/ through the gateway's nginx (SNI, Host, its CA), on a
    new connection each time (a keep-alive one could outlive an nginx reload)."""
    import urllib3

    host = f"{name}.{DOMAIN}"
    pool = urllib3.HTTPSConnectionPool(
        "127.0.0.1",
        stack.gateway.ports["https"],
        server_hostname=host,
        assert_hostname=host,
        ca_certs=str(stack.gateway.ca),
        cert_reqs="CERT_REQUIRED",
        retries=False,
        timeout=5,
    )
    try:
        answer = pool.request("GET", "/", headers={"Host": host}, redirect=False)
        return answer.data.decode(errors="replace") if answer.status == 200 else ""
    except urllib3.exceptions.HTTPError:
        return ""
    finally:
        pool.close()


def _wait_serving(stack: Stack, name: str, commit: str, timeout: float = 120.0) -> float:
    """Until the URL serves `commit`'s release; the wall clock (time.time()) then."""
    want = f"release {commit[:12]}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if want in _fetch(stack, name):
            return time.time()
        time.sleep(POLL)
    raise RuntimeError(f"https://{name}.{DOMAIN}/ did not serve {commit[:12]} in {timeout:.0f} s")


def _post(stack: Stack, repo: ExampleRepo, ref: str, commit: str) -> dict[str, Any]:
    import requests

    spec = {"repository": "acme/shop", "ref": ref, "commit": commit, "app": APP}
    spec["template"] = "debian-12"
    answer = requests.post(
        f"{stack.url}/api/v1/deployments/",
        headers={"Authorization": f"Bearer {stack.token}"},
        data={"spec": json.dumps(spec)},
        files={"source": ("source.tar.gz", io.BytesIO(repo.archive(commit)), "application/gzip")},
        timeout=30,
    )
    if answer.status_code not in (200, 201):
        raise RuntimeError(f"the push answered {answer.status_code}: {answer.text}")
    body: dict[str, Any] = answer.json()
    return body


def _delete(stack: Stack, name: str) -> str:
    import requests

    answer = requests.delete(
        f"{stack.url}/api/v1/deployments/{name}/",
        headers={"Authorization": f"Bearer {stack.token}"},
        timeout=30,
    )
    if answer.status_code != 202:
        raise RuntimeError(f"the delete answered {answer.status_code}: {answer.text}")
    return str(answer.json()["job"]["id"])


def _wait_job(job_id: str, timeout: float = 120.0) -> Any:
    from containers.models import Job

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = Job.objects.get(pk=job_id)
        if job.is_final:
            if job.status != "succeeded":
                raise RuntimeError(f"job {job_id} ({job.kind}) {job.status}: {job.error}")
            return job
        time.sleep(POLL)
    raise RuntimeError(f"job {job_id} did not end within {timeout:.0f} s")


def _task_ids(stack: Stack) -> dict[str, str]:
    return {t["upid"]: t["type"] for t in stack.sim.admin.state()["tasks"]}


def _new_tasks(before: dict[str, str], after: dict[str, str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for upid, kind in after.items():
        if upid not in before:
            counts[kind] = counts.get(kind, 0) + 1
    return counts


def timed_push(stack: Stack, repo: ExampleRepo, ref: str, commit: str) -> Push:
    """POST the commit; the time until its URL serves it."""
    tasks = _task_ids(stack)
    began = time.time()
    body = _post(stack, repo, ref, commit)
    request = time.time() - began
    served = _wait_serving(stack, body["name"], commit)
    job = _wait_job(body["job"]["id"])
    return Push(
        seconds=served - began,
        job_ids=[str(job.pk)],
        proxmox=_new_tasks(tasks, _task_ids(stack)),
        request=request,
        tail=served - job.finished_at.timestamp(),
    )


def timed_recreate(stack: Stack, repo: ExampleRepo, ref: str, name: str, commit: str) -> Push:
    """The previous system's update: delete, wait until it is gone, push as new."""
    tasks = _task_ids(stack)
    began = time.time()
    deleted = _wait_job(_delete(stack, name))
    pushed = time.time()
    body = _post(stack, repo, ref, commit)
    if body["outcome"] != "created":
        raise RuntimeError(f"the push after the delete was {body['outcome']}, not created")
    request = time.time() - pushed
    served = _wait_serving(stack, body["name"], commit)
    job = _wait_job(body["job"]["id"])
    return Push(
        seconds=served - began,
        job_ids=[str(deleted.pk), str(job.pk)],
        proxmox=_new_tasks(tasks, _task_ids(stack)),
        request=request,
        tail=served - job.finished_at.timestamp(),
    )


def job_steps(job_id: str) -> dict[str, float]:
    """Seconds queued and in each step that ran, of one job."""
    from containers.models import Job

    job = Job.objects.get(pk=job_id)
    started, finished = job.started_at, job.finished_at
    assert started is not None  # the job ended
    assert finished is not None
    steps = {"queued": (started - job.created_at).total_seconds()}
    for st in job.steps:
        if st.get("started_at") and st.get("finished_at") and st["state"] == "done":
            took = datetime.fromisoformat(st["finished_at"]) - datetime.fromisoformat(
                st["started_at"]
            )
            steps[st["name"]] = took.total_seconds()
    steps["job end"] = (finished - started).total_seconds() - sum(
        v for k, v in steps.items() if k != "queued"
    )  # what the job did between and after its steps (status, saves)
    return steps


def one_round(n: int, stack: Stack, repo: ExampleRepo) -> Round:
    ref, name = f"bench-{n}", f"acme-shop-bench-{n}"
    first = timed_push(stack, repo, ref, repo.change(f"round {n}: first push"))
    update = timed_push(stack, repo, ref, repo.change(f"round {n}: an update"))
    recreate = timed_recreate(stack, repo, ref, name, repo.change(f"round {n}: recreated"))
    _wait_job(_delete(stack, name))  # untimed: leave the simulator as it was
    return Round(
        first=first,
        update=update,
        recreate=recreate,
        steps_first=job_steps(first.job_ids[0]),
        steps_update=job_steps(update.job_ids[0]),
    )


# -- the report ------------------------------------------------------------------------------
def install_seconds() -> float:
    """The install command's own time, run once here in a copy of the app."""
    where = Path(tempfile.mkdtemp(prefix="bench-launchpad-install-"))
    try:
        shutil.copytree(EXAMPLE, where / "app")
        began = time.monotonic()
        subprocess.run(["sh", "-c", INSTALL], cwd=where / "app", check=True, capture_output=True)
        return time.monotonic() - began
    finally:
        shutil.rmtree(where, ignore_errors=True)


def _mean_steps(rows: list[dict[str, float]]) -> dict[str, float]:
    names: list[str] = []
    for row in rows:
        names += [k for k in row if k not in names]
    return {k: statistics.fmean(r.get(k, 0.0) for r in rows) for k in names}


def _print_round(n: int, r: Round, install: float) -> None:
    ideal = r.first.proxmox_seconds + install
    tasks = ", ".join(f"{k} x{v}" for k, v in sorted(r.first.proxmox.items()))
    print(
        f"round {n}: first push {r.first.seconds:.2f} s (ideal {ideal:.2f}: proxmox "
        f"{r.first.proxmox_seconds:.2f} [{tasks}] + install {install:.2f}; overhead "
        f"{r.first.seconds - ideal:+.2f}) | update {r.update.seconds:.2f} s | "
        f"delete-and-recreate {r.recreate.seconds:.2f} s "
        f"(proxmox {r.recreate.proxmox_seconds:.2f}) | ratio "
        f"{r.recreate.seconds / r.update.seconds:.2f}"
    )


def _print_steps(title: str, steps: dict[str, float], pushes: list[Push]) -> None:
    request = statistics.fmean(p.request for p in pushes)
    tail = statistics.fmean(p.tail for p in pushes)
    print(
        f"   {title}, mean s: push request {request:.3f}, "
        + ", ".join(f"{k} {v:.3f}" for k, v in steps.items())
        + f", URL answering after the job's end {tail:+.3f}"
    )


def report(rounds: list[Round], install: float) -> None:
    first = statistics.median(r.first.seconds for r in rounds)
    proxmox = statistics.median(r.first.proxmox_seconds for r in rounds)
    update = statistics.median(r.update.seconds for r in rounds)
    recreate = statistics.median(r.recreate.seconds for r in rounds)
    ratio = statistics.median(r.recreate.seconds / r.update.seconds for r in rounds)
    print("where the time goes (job steps; 'queued' is from the job's creation to a worker):")
    _print_steps(
        "first push", _mean_steps([r.steps_first for r in rounds]), [r.first for r in rounds]
    )
    _print_steps(
        "update", _mean_steps([r.steps_update for r in rounds]), [r.update for r in rounds]
    )
    ideal = proxmox + install
    print(
        f"first push -> URL     {first:.2f} s median; ideal {ideal:.2f} s (proxmox "
        f"{proxmox:.2f} + install {install:.2f}); overhead {first - ideal:.2f} s "
        f"(target < 2 s)"
    )
    print(
        f"update -> URL         {update:.2f} s median; install + 1 s = {install + 1:.2f} s "
        f"(target: under it); overhead {update - install:.2f} s"
    )
    print(f"delete-and-recreate   {recreate:.2f} s median; {ratio:.2f} x the update in place")


# -- the stack -------------------------------------------------------------------------------
def _warm_up(stack: Stack) -> None:
    """A running portal's web processes are warm: a few API requests load what a push's
    first request would (both gunicorn workers)."""
    import requests

    for _ in range(6):
        requests.get(
            f"{stack.url}/api/v1/deployments/",
            headers={"Authorization": f"Bearer {stack.token}"},
            timeout=30,
        ).raise_for_status()


def main() -> None:
    missing = missing_binaries("git")
    if missing:
        print(f"not installed: {', '.join(missing)} (openssh-server, nginx, dnsmasq-base, git)")
        return
    with ExitStack() as cleanup:
        rd, guests = private_dirs("launchpad", cleanup)
        began = time.monotonic()
        stack = start_stack(rd, guests, cleanup, task_seconds=TASK_SECONDS)
        install = install_seconds()
        repo = ExampleRepo(rd / "shop")
        _warm_up(stack)
        print(
            f"stack started in {time.monotonic() - began:.1f} s; proxmox task time "
            f"{TASK_SECONDS:.2f} s; install command '{INSTALL}' takes {install:.2f} s "
            f"(measured here); {ROUNDS} rounds"
        )
        rounds = []
        for n in range(1, ROUNDS + 1):
            rounds.append(one_round(n, stack, repo))
            _print_round(n, rounds[-1], install)
        report(rounds, install)


if __name__ == "__main__":
    main()
