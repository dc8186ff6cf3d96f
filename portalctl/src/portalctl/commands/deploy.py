"""portalctl deploy [PATH]: one commit of a local git checkout into its deployment
(LaunchPad, docs/launchpad.md).

The spec and the commit's tree (`git archive`) go to `POST /api/v1/deployments/` in one
multipart request; the portal answers with the job that creates or updates the
deployment's container, and this follows it to the end. While another job of the
deployment's container runs the portal answers 409 `job_in_progress`: the push waits for
that job and is sent again, all within --timeout. Env values are sent, never printed.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from ..client import Api
from ..envfile import env_options, read_env_file
from ..errors import ApiError, CliError, Exit
from ..follow import FINAL, follow, outcome
from ..gitsource import Checkout, checked_repository
from ..output import fields, print_json, result, say
from ..state import SESSION
from ._common import JsonOpt

ACCESS = ("public", "users", "owner")
DEFAULT_TIMEOUT = 1800
WAIT_POLL_SECONDS = 1.0


@dataclass(frozen=True)
class Target:
    """What is deployed: the repository and ref that name the deployment, and the commit."""

    repository: str
    ref: str
    commit: str
    committed_at: str


def resolve_target(
    checkout: Checkout,
    *,
    repository: str | None,
    ref: str | None,
    pr: int | None,
    commit: str | None,
    username: Callable[[], str],
) -> Target:
    """The options, or what the checkout says: origin's GitHub name (else the portal
    user's name and the directory's), the current branch, HEAD."""
    if ref is not None and pr is not None:
        raise CliError("say --ref or --pr, not both", Exit.USAGE)
    if repository is not None:
        repository = checked_repository(repository)
    else:
        repository = checkout.origin_repository() or f"{username()}/{checkout.top.name}"
    if pr is not None:
        ref = f"pr-{pr}"
    elif ref is None:
        ref = checkout.branch()
        if ref is None:
            raise CliError(
                "HEAD is detached (no branch checked out): say which with --ref BRANCH or --pr N",
                Exit.USAGE,
            )
    elif not ref.strip():
        raise CliError("--ref is empty", Exit.USAGE)
    sha = checkout.commit(commit or "HEAD")
    return Target(repository, ref.strip(), sha, checkout.committed_at(sha))


def services_list(value: str | None) -> list[str] | None:
    """`--services postgresql,redis` as a list (the portal checks the names)."""
    if value is None:
        return None
    return [s.strip() for s in value.split(",") if s.strip()]


def processes_map(items: list[str] | None) -> dict[str, str] | None:
    """`--process worker='python3 worker.py'` (repeatable) as {name: command}."""
    if not items:
        return None
    found: dict[str, str] = {}
    for item in items:
        name, sep, command = item.partition("=")
        if not sep or not name.strip() or not command.strip():
            raise CliError(f"--process is NAME=COMMAND (got {item!r})", Exit.USAGE)
        found[name.strip()] = command.strip()
    return found


def app_spec(
    *,
    install: str | None = None,
    build: str | None = None,
    start: str | None = None,
    processes: list[str] | None = None,
    port: int | None = None,
    health: str | None = None,
    services: str | None = None,
    access: str | None = None,
) -> dict[str, Any]:
    """The `app` part of the spec: only what was given (the portal has the defaults)."""
    if access is not None and access not in ACCESS:
        raise CliError(f"--access is one of {', '.join(ACCESS)} (got {access!r})", Exit.USAGE)
    app = {
        "install": install,
        "build": build,
        "start": start,
        "processes": processes_map(processes),
        "port": port,
        "health": health,
        "services": services_list(services),
        "access": access,
    }
    return {k: v for k, v in app.items() if v is not None}


def build_spec(
    target: Target,
    *,
    template: str | None,
    app: dict[str, Any],
    env: dict[str, str],
    ttl_days: int | None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "repository": target.repository,
        "ref": target.ref,
        "commit": target.commit,
        "committed_at": target.committed_at,
    }
    if template:
        spec["template"] = template
    if app:
        spec["app"] = app
    if env:
        spec["env"] = env
    if ttl_days is not None:
        spec["ttl_days"] = ttl_days
    return spec


def collect_env(items: list[str] | None, env_file: Path | None) -> dict[str, str]:
    """The file's env, then `--env` over it."""
    env = read_env_file(env_file) if env_file is not None else {}
    env.update(env_options(items))
    return env


# -- the push --------------------------------------------------------------------------------
def push(api: Api, spec: dict[str, Any], archive: Path, *, deadline: float) -> dict[str, Any]:
    """Send the push; on 409 `job_in_progress` wait for that job and send it again."""
    body = json.dumps(spec)
    while True:
        try:
            with archive.open("rb") as source:
                return dict(
                    api.upload(
                        "deployments/",
                        fields={"spec": body},
                        files={"source": ("source.tar.gz", source, "application/gzip")},
                    )
                )
        except ApiError as exc:
            if exc.status != 409 or exc.code != "job_in_progress":
                raise
            detail = exc.detail if isinstance(exc.detail, dict) else {}
            wait_for_job(api, str(detail.get("job") or ""), deadline=deadline)


def wait_for_job(api: Api, job_id: str, *, deadline: float) -> None:
    """Quietly until the job has ended (one line on stderr), or exit 5 at the deadline."""
    from ..display import job_label

    said = False
    while True:
        job = api.get(f"jobs/{job_id}/") if job_id else {}
        if job_id and job.get("status") in FINAL:
            return
        if not said:
            what = job_label(job) if job_id else "a job of the deployment"
            say(f"waiting for {what} to end before deploying")
            said = True
        if time.monotonic() >= deadline:
            raise CliError(
                f"{'job ' + job_id if job_id else 'a job'} of the deployment is still running "
                "after --timeout; nothing was deployed",
                Exit.CONFLICT,
            )
        time.sleep(WAIT_POLL_SECONDS)
        if not job_id:
            return  # no id to watch: a pause, then the push again


def finish(api: Api, answer: dict[str, Any], *, wait: bool, json_: bool, deadline: float) -> None:
    """Follow the push's job and report the deployment (exit 6 when it failed)."""
    name = str(answer.get("name"))
    job = answer.get("job")
    if answer.get("outcome") == "superseded" or job is None:
        line = (
            f"{name}: superseded, nothing changed: a newer commit "
            f"({str(answer.get('commit'))[:12]}) is deployed already"
        )
        if json_:
            print_json(answer)
            say(line)
        else:
            result(line)
        return
    if not wait:
        if json_:
            print_json(answer)
        else:
            say(
                f"deploying {name}: job {job['id']} {job.get('status')}; "
                f"follow it with: portalctl jobs logs -f {job['id']}"
            )
            result(str(job["id"]))
        return
    job = follow(api, job, all_logs=True, deadline=deadline)
    deployment = api.get(f"deployments/{name}/")
    if json_:
        print_json(deployment)
    if job.get("status") != "succeeded":
        try:
            outcome(job, what=lambda j: f"the deploy of {name} (job {j.get('id')})")
        except CliError as exc:
            message = str(deployment.get("state_message") or "")
            if message and message not in exc.message:  # e.g. which commit still serves
                exc.details.insert(0, message)
            raise
    if deployment.get("state") == "failed":
        raise CliError(
            f"the deploy of {name} failed: {deployment.get('state_message') or 'no reason given'}",
            Exit.JOB_FAILED,
            [f"see its log: portalctl jobs logs {job.get('id')}"],
        )
    if not json_:
        report(deployment)


def report(deployment: dict[str, Any]) -> None:
    container = deployment.get("container") or {}
    fields(
        [
            ("url", deployment.get("url")),
            ("ssh", deployment.get("ssh")),
            ("container", container.get("hostname") or deployment.get("name")),
            ("commit", str(deployment.get("serving_commit") or deployment.get("commit"))[:12]),
        ]
    )


# -- the command -----------------------------------------------------------------------------
def deploy(
    path: Annotated[
        Path,
        typer.Argument(
            metavar="[PATH]", help="A local git checkout (default: here).", show_default=False
        ),
    ] = Path("."),
    repository: Annotated[
        str | None,
        typer.Option(help="OWNER/NAME (default: origin's GitHub name, else you/DIRECTORY)."),
    ] = None,
    ref: Annotated[str | None, typer.Option(help="The branch (default: the current one).")] = None,
    pr: Annotated[int | None, typer.Option(min=1, help="Pull request N (ref pr-N).")] = None,
    commit: Annotated[str | None, typer.Option(help="The commit (default: HEAD).")] = None,
    template: Annotated[
        str | None, typer.Option(help="A template (default: the portal's).")
    ] = None,
    install: Annotated[str | None, typer.Option(help="The install command.")] = None,
    build: Annotated[str | None, typer.Option(help="The build command.")] = None,
    start: Annotated[str | None, typer.Option(help="The command that runs the app.")] = None,
    process: Annotated[
        list[str] | None,
        typer.Option(
            "--process", help="NAME=COMMAND: another process, a unit app-NAME (repeatable)."
        ),
    ] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Its HTTP port (default 8000).")
    ] = None,
    health: Annotated[str | None, typer.Option(help="The health check's path (default /).")] = None,
    services: Annotated[
        str | None, typer.Option(help="e.g. postgresql,redis (comma-separated).")
    ] = None,
    access: Annotated[
        str | None, typer.Option(help="Who may open its URL: public, users or owner.")
    ] = None,
    env: Annotated[
        list[str] | None, typer.Option("--env", help="KEY=VALUE (repeatable; never printed).")
    ] = None,
    env_file: Annotated[
        Path | None, typer.Option(help="A JSON object, a YAML mapping or KEY=VALUE lines.")
    ] = None,
    ttl: Annotated[int | None, typer.Option(min=1, help="Idle days before it is removed.")] = None,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Print the job and return at once.")
    ] = False,
    timeout: Annotated[
        int, typer.Option(min=1, help="Seconds to wait for a running job and the deploy.")
    ] = DEFAULT_TIMEOUT,
    json_: JsonOpt = False,
) -> None:
    """Deploy a commit of a git checkout into its own container, and follow it until live."""
    app = app_spec(
        install=install,
        build=build,
        start=start,
        processes=process,
        port=port,
        health=health,
        services=services,
        access=access,
    )
    variables = collect_env(env, env_file)
    checkout = Checkout.at(path)
    target = resolve_target(
        checkout,
        repository=repository,
        ref=ref,
        pr=pr,
        commit=commit,
        username=lambda: str(SESSION.me()["username"]),
    )
    if checkout.has_changes():
        say(
            f"warning: {checkout.top} has uncommitted changes; "
            f"only commit {target.commit[:12]} is deployed"
        )
    spec = build_spec(target, template=template, app=app, env=variables, ttl_days=ttl)
    send(checkout, target, spec, wait=not no_wait, json_=json_, timeout=timeout)


def send(
    checkout: Checkout,
    target: Target,
    spec: dict[str, Any],
    *,
    wait: bool,
    json_: bool,
    timeout: int,
) -> None:
    """Archive the commit, push it, and follow the deploy (or not)."""
    api = SESSION.api()
    deadline = time.monotonic() + timeout
    with tempfile.TemporaryDirectory(prefix="portalctl-") as tmp:
        archive = checkout.archive(target.commit, Path(tmp) / "source.tar.gz")
        say(f"deploying {target.repository} {target.ref} at {target.commit[:12]}")
        answer = push(api, spec, archive, deadline=deadline)
    finish(api, answer, wait=wait, json_=json_, deadline=deadline)
