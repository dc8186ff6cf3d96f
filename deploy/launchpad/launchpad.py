"""LaunchPad's GitHub Action: deploy the pushed branch or pull request into its container on
the portal, or destroy it, and say so on GitHub.

Run by action.yml as `python3 launchpad.py`, with the inputs as INPUT_* variables and the
environment GitHub sets (GITHUB_EVENT_NAME, GITHUB_EVENT_PATH, GITHUB_REPOSITORY, ...).
The deploy itself is `portalctl deploy` (and `portalctl deployments destroy`), run as a
subprocess with PORTAL_URL and PORTAL_TOKEN; its progress goes to the log as it comes.

Rules kept here, each against a failure of the previous system:
- the inputs (the env above all) are read before anything is sent: bad JSON is an error;
- env values reach portalctl in a 0600 file, never a command line, and are masked;
- a failed deploy fails the step with the portal's own message and a failure status;
- a destroy that fails fails the step; one of a deployment already gone does not.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lp_env import EnvError, parse_env
from lp_events import DEPLOY, DESTROY, SKIP, EventError, Target, container_name, decide
from lp_github import GitHub, GitHubError, Reporter
from lp_report import (
    DEPLOYING,
    FAILED,
    LIVE,
    REMOVED,
    SUPERSEDED,
    Outcome,
    append_summary,
    error,
    mask,
    notice,
    render,
    warning,
    write_outputs,
)

DEFAULT_API = "https://api.github.com"
EXIT_NOT_FOUND = 3  # portalctl's exit code for "no such deployment" (docs/cli.md)
_REMOVED = re.compile(r"([a-z0-9-]{1,63}) is removed")
_FLAGS = ("template", "install", "build", "start", "port", "health", "access", "ttl")


class InputError(ValueError):
    pass


@dataclass(frozen=True)
class Inputs:
    values: dict[str, str]

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Inputs:
        values = {
            key[len("INPUT_") :].lower().replace("-", "_"): value
            for key, value in environ.items()
            if key.startswith("INPUT_")
        }
        return cls(values)

    def get(self, name: str) -> str:
        return self.values.get(name.replace("-", "_"), "").strip()


def check_inputs(inputs: Inputs) -> None:
    if not inputs.get("portal-url"):
        raise InputError("the portal-url input is empty")
    if not inputs.get("token"):
        raise InputError("the token input is empty (a pull request from a fork gets no secrets)")
    for name, low, high in (("port", 1, 65535), ("ttl", 1, 3650)):
        value = inputs.get(name)
        if value and (not value.isdigit() or not low <= int(value) <= high):
            raise InputError(f"the {name} input must be a whole number from {low} to {high}")


def services(text: str) -> str:
    """`postgresql, redis` or one a line: the comma list portalctl takes."""
    return ",".join(s for s in text.replace(",", " ").split() if s)


# -- portalctl


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: list[str]

    def message(self) -> str:
        """The portal's own message: portalctl's `error:` line and the detail lines under it."""
        for i in range(len(self.stderr) - 1, -1, -1):
            if self.stderr[i].startswith("error:"):
                head = self.stderr[i][len("error:") :].strip()
                details = [ln.strip() for ln in self.stderr[i + 1 :] if ln.startswith("  ")]
                return "\n".join([head, *details])
        return ""

    def body(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.stdout)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None


def portalctl(argv: list[str], env: Mapping[str, str]) -> Ran:
    """Run portalctl; its stderr (progress, the job's log) is passed to the log line by line
    as it comes and kept for the error message; stdout is the result."""
    binary = os.environ.get("LAUNCHPAD_PORTALCTL") or shutil.which("portalctl") or "portalctl"
    print(f"$ portalctl {shlex.join(argv)}", flush=True)
    proc = subprocess.Popen(
        [binary, *argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(env),
    )
    lines: list[str] = []

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line.rstrip("\n"))
            sys.stdout.write(line)
            sys.stdout.flush()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    assert proc.stdout is not None
    out = proc.stdout.read()
    code = proc.wait()
    reader.join(timeout=10)
    return Ran(code, out, lines)


@contextlib.contextmanager
def env_file(values: dict[str, str]) -> Iterator[str | None]:
    """The env as a JSON object in a file only this user can read, removed afterwards."""
    if not values:
        yield None
        return
    fd, path = tempfile.mkstemp(
        prefix="launchpad-env-", suffix=".json", dir=os.environ.get("RUNNER_TEMP") or None
    )
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(values, f)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def deploy_argv(target: Target, inputs: Inputs, source: str, envfile: str | None) -> list[str]:
    argv = ["deploy", source, "--repository", target.repository]
    if target.pull_request is not None:
        argv += ["--pr", str(target.pull_request)]
    else:
        argv += ["--ref", target.ref]
    argv += ["--commit", target.commit]
    for name in _FLAGS:
        if value := inputs.get(name):
            argv += [f"--{name}", value]
    if listed := services(inputs.get("services")):
        argv += ["--services", listed]
    if envfile:
        argv += ["--env-file", envfile]
    return [*argv, "--json"]


# -- the run


@dataclass
class Context:
    inputs: Inputs
    environ: Mapping[str, str]
    reporter: Reporter
    portal_env: dict[str, str]
    log_url: str


def main(environ: Mapping[str, str] | None = None) -> int:
    environ = dict(os.environ if environ is None else environ)
    inputs = Inputs.from_environ(environ)
    for secret in (inputs.get("token"), inputs.get("github-token")):
        if secret:
            mask(secret)
    try:
        payload = load_payload(environ.get("GITHUB_EVENT_PATH", ""))
        target = decide(
            environ.get("GITHUB_EVENT_NAME", ""), payload, environ, inputs.get("command")
        )
        if target.command == SKIP:
            notice(f"nothing to deploy or destroy: {target.why}")
            return 0
        check_inputs(inputs)
        env = parse_env(inputs.values.get("env", ""))  # before anything is sent
    except (InputError, EventError, EnvError) as exc:
        error(str(exc))
        return 1
    for value in env.values():
        mask(value)
    ctx = make_context(inputs, environ)
    if target.command == DEPLOY:
        return run_deploy(ctx, target, env)
    assert target.command == DESTROY
    return run_destroy(ctx, target)


def load_payload(path: str) -> dict[str, Any]:
    if not path:
        raise InputError("GITHUB_EVENT_PATH is not set")
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the event payload {path}: {exc}") from None
    if not isinstance(data, dict):
        raise InputError("the event payload is not a JSON object")
    return data


def make_context(inputs: Inputs, environ: Mapping[str, str]) -> Context:
    server = environ.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
    repository = environ.get("GITHUB_REPOSITORY", "")
    log_url = f"{server}/{repository}/actions/runs/{environ.get('GITHUB_RUN_ID', '')}"
    github = None
    if token := inputs.get("github-token"):
        try:
            github = GitHub(environ.get("GITHUB_API_URL", DEFAULT_API), token, repository)
        except GitHubError as exc:
            warning(f"the run is not reported to GitHub: {exc}")
    else:
        notice("no github-token: the run is not reported to GitHub")
    # Not the inputs: the env and both tokens are in them. The portal's token goes as the
    # variable portalctl reads, which wins over any profile.
    portal_env = {k: v for k, v in environ.items() if not k.startswith("INPUT_")}
    portal_env.update(PORTAL_URL=inputs.get("portal-url"), PORTAL_TOKEN=inputs.get("token"))
    return Context(inputs, environ, Reporter(github, log_url), portal_env, log_url)


def run_deploy(ctx: Context, target: Target, env: dict[str, str]) -> int:
    source = ctx.inputs.get("path") or ctx.environ.get("GITHUB_WORKSPACE") or "."
    problem = have_commit(source, target.commit)
    if problem:
        error(problem)
        return 1
    environment = container_name(target.repository, target.ref)
    reporter = ctx.reporter
    reporter.started(
        commit=target.commit,
        environment=environment,
        transient=target.is_pull_request,
        ref=target.ref,
    )
    if target.pull_request is not None:
        reporter.comment(
            target.pull_request,
            Outcome(DEPLOYING, target.ref, target.commit, name=environment, log_url=ctx.log_url),
        )
    with env_file(env) as envfile:
        ran = portalctl(deploy_argv(target, ctx.inputs, source, envfile), ctx.portal_env)
    outcome = judge(ran, target, ctx)
    reporter.finished(outcome, environment)
    if target.pull_request is not None:
        reporter.comment(target.pull_request, outcome)
    write_outputs(
        ctx.environ.get("GITHUB_OUTPUT", ""),
        {"url": outcome.url, "ssh": outcome.ssh, "container": outcome.name},
    )
    append_summary(ctx.environ.get("GITHUB_STEP_SUMMARY", ""), render(outcome))
    if outcome.state == FAILED:
        error(outcome.message)
        return 1
    if outcome.state == SUPERSEDED:
        notice(
            f"{target.commit[:7]} is older than the deployed {outcome.serving_commit[:7]}: nothing changed"
        )
    else:
        notice(f"{outcome.name} is live at {outcome.url}")
    return 0


def judge(ran: Ran, target: Target, ctx: Context) -> Outcome:
    """The deploy's outcome from portalctl's exit code and the deployment it printed."""
    body = ran.body()
    if ran.code == 0 and body and body.get("state") in ("queued", "deploying"):
        # portalctl came back before the job ended: follow the job to its end.
        body = follow(body, ctx) or body
    state = str((body or {}).get("state") or "")
    more = {"log_url": ctx.log_url}
    if ran.code == 0 and body and body.get("outcome") == "superseded":
        return Outcome.from_deployment(SUPERSEDED, target.ref, target.commit, body, **more)
    if ran.code == 0 and state == "live":
        return Outcome.from_deployment(LIVE, target.ref, target.commit, body, **more)
    message = ran.message() or str((body or {}).get("state_message") or "")
    if not message:
        message = (
            f"portalctl deploy exited with {ran.code}"
            if ran.code
            else f"the deployment is {state or 'in an unknown state'}"
        )
    return Outcome.from_deployment(FAILED, target.ref, target.commit, body, message=message, **more)


def follow(body: dict[str, Any], ctx: Context) -> dict[str, Any] | None:
    job = (body.get("job") or {}).get("id")
    if not job:
        return None
    portalctl(["jobs", "logs", "-f", str(job)], ctx.portal_env)
    return portalctl(
        ["deployments", "show", str(body.get("name")), "--json"], ctx.portal_env
    ).body()


def have_commit(source: str, commit: str) -> str:
    """'' when the checkout at `source` has the commit (fetched if it is missing: a pull
    request's checkout is its merge commit unless told otherwise), else the problem."""
    git = shutil.which("git")
    if not git or not Path(source).is_dir():
        return "" if git else "git is not installed on the runner"

    def has() -> bool:
        probe = [git, "-C", source, "cat-file", "-e", f"{commit}^{{commit}}"]
        return subprocess.run(probe, capture_output=True, check=False).returncode == 0

    if has():
        return ""
    subprocess.run(
        [git, "-C", source, "fetch", "--no-tags", "--depth=1", "origin", commit],
        capture_output=True,
        check=False,
    )
    if has():
        return ""
    return (
        f"commit {commit[:7]} is not in the checkout at {source}: check it out first "
        "(actions/checkout with ref: ${{ github.event.pull_request.head.sha || github.sha }})"
    )


def run_destroy(ctx: Context, target: Target) -> int:
    environment = container_name(target.repository, target.ref)
    ran = portalctl(
        [
            "deployments",
            "destroy",
            "--repository",
            target.repository,
            "--ref",
            target.ref,
            "--wait",
        ],
        ctx.portal_env,
    )
    if ran.code not in (0, EXIT_NOT_FOUND):
        error(ran.message() or f"portalctl deployments destroy exited with {ran.code}")
        return 1
    if ran.code == EXIT_NOT_FOUND:
        notice(f"no deployment of {target.ref} on the portal: nothing to remove")
    else:
        # portalctl says `NAME is removed`: the portal's name wins over the guess.
        said = _REMOVED.fullmatch(ran.stdout.strip())
        environment = said.group(1) if said else environment
        notice(f"the deployment of {target.ref} ({environment}) was removed")
    ctx.reporter.destroyed(environment)
    outcome = Outcome(REMOVED, target.ref, name=environment, log_url=ctx.log_url)
    if target.pull_request is not None:
        ctx.reporter.comment(target.pull_request, outcome, create=False)
    write_outputs(
        ctx.environ.get("GITHUB_OUTPUT", ""), {"url": "", "ssh": "", "container": environment}
    )
    append_summary(ctx.environ.get("GITHUB_STEP_SUMMARY", ""), render(outcome))
    return 0


if __name__ == "__main__":
    sys.exit(main())
