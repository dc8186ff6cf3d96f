"""deployments list|show|destroy|extend|logs (LaunchPad, docs/launchpad.md). A deployment
is named by its container's hostname, or by `--repository R --ref REF` where it says so."""

from __future__ import annotations

import json
import sys
import time
from collections import deque
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import CliError, Exit
from ..follow import MAX_FAILED_CONNECTS, follow, outcome
from ..output import Column, fields, listing, print_json, result, say, text, when
from ..sse import events
from ..state import SESSION
from ._common import JsonOpt, WaitOpt

if TYPE_CHECKING:
    from ..client import Api

app = typer.Typer(no_args_is_help=True, help="Deployments: branches and pull requests, live.")

LIST_COLUMNS: list[Column] = [
    ("NAME", "name"),
    ("REPOSITORY", "repository"),
    ("REF", "ref"),
    ("STATE", "state"),
    ("COMMIT", lambda d: str(d.get("serving_commit") or d.get("commit") or "")[:12]),
    ("URL", "url"),
    ("EXPIRES", lambda d: when(d.get("expires_at"))),
]
REMOVED = "removed"
# Lines remembered to recognise those a reconnect sends again (the server's most is 2000).
RECENT_LINES = 500


def complete_deployment(incomplete: str) -> list[str]:
    """Shell completion of deployment names (quietly nothing when the portal cannot say)."""
    try:
        names = (str(d["name"]) for d in SESSION.api().pages("deployments/"))
        return sorted(n for n in names if n.startswith(incomplete))
    except Exception:  # completion must never print an error into the shell
        return []


NameArg = Annotated[
    str,
    typer.Argument(
        metavar="NAME",
        help="The deployment: its container's hostname (deployments list shows them).",
        autocompletion=complete_deployment,
    ),
]
RepositoryOpt = Annotated[str | None, typer.Option(help="OWNER/NAME, as on GitHub.")]
RefOpt = Annotated[str | None, typer.Option(help="A branch, or pr-N for pull request N.")]


def path_of(name: str, tail: str = "") -> str:
    if not name or "/" in name or name.startswith("."):
        raise CliError(f"'{name}' is not a deployment's name", Exit.USAGE)
    return f"deployments/{name}/{tail}"


def find_by_ref(api: Api, repository: str, ref: str) -> dict[str, Any]:
    """The live (not removed) deployment of `repository` at `ref`, or exit 3."""
    found = [
        d
        for d in api.pages("deployments/", repository=repository, ref=ref)
        if d.get("repository") == repository and d.get("ref") == ref and d.get("state") != REMOVED
    ]
    if not found:
        raise CliError(
            f"no deployment of {repository} at {ref} (or it is not yours)", Exit.NOT_FOUND
        )
    return found[0]


# -- reading ---------------------------------------------------------------------------------
@app.command("list")
def list_(
    repository: RepositoryOpt = None,
    ref: RefOpt = None,
    state: Annotated[
        str | None, typer.Option(help="queued, deploying, live, failed, removing, removed.")
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Your deployments (staff: everyone's)."""
    rows = list(SESSION.api().pages("deployments/", repository=repository, ref=ref, state=state))
    listing(json_, rows, LIST_COLUMNS, empty="no deployments")


@app.command()
def show(name: NameArg, json_: JsonOpt = False) -> None:
    """One deployment: its URL, SSH line, commits, state, app and last job."""
    d = SESSION.api().get(path_of(name))
    if json_:
        print_json(d)
        return
    c, job, app_ = d.get("container") or {}, d.get("job") or {}, d.get("app") or {}
    state = str(d.get("state")) + (f" ({d['state_message']})" if d.get("state_message") else "")
    pr = f" (pull request {d['pull_request']})" if d.get("pull_request") else ""
    fields(
        [
            ("name", d.get("name")),
            ("repository", d.get("repository")),
            ("ref", f"{d.get('ref')}{pr}"),
            ("state", state),
            ("commit", d.get("commit")),
            ("serving", d.get("serving_commit")),
            ("url", d.get("url")),
            ("ssh", d.get("ssh")),
            ("container", f"{text(c.get('hostname'))} (VMID {c.get('vmid')}, {c.get('status')})"),
            ("job", f"{job.get('id')} ({job.get('kind')}, {job.get('status')})" if job else None),
            ("start", app_.get("start")),
            ("port", app_.get("port")),
            ("services", app_.get("services")),
            ("access", app_.get("access")),
            ("env", d.get("env_names")),  # the names only: the values are never shown
            ("expires", when(d.get("expires_at")) if d.get("expires_at") else "never"),
            ("created", when(d.get("created_at"))),
            ("updated", when(d.get("updated_at"))),
        ]
    )


# -- changing --------------------------------------------------------------------------------
@app.command()
def destroy(
    name: Annotated[
        str | None,
        typer.Argument(
            metavar="[NAME]",
            help="The deployment (or say --repository and --ref).",
            autocompletion=complete_deployment,
            show_default=False,
        ),
    ] = None,
    repository: RepositoryOpt = None,
    ref: RefOpt = None,
    wait: WaitOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Remove a deployment and its container (the delete is a job, with retries)."""
    api = SESSION.api()
    if name is not None and (repository or ref):
        raise CliError("say NAME, or --repository and --ref, not both", Exit.USAGE)
    if name is None:
        if not (repository and ref):
            raise CliError("say which: NAME, or --repository R --ref REF", Exit.USAGE)
        name = str(find_by_ref(api, repository, ref)["name"])
    answer = api.delete(path_of(name))
    job = (answer or {}).get("job")
    if job is None:  # 204: its container was gone already
        if json_:
            print_json({"job": None})
        else:
            result(f"{name} is removed")
        return
    if not wait:
        if json_:
            print_json(answer)
        else:
            say(f"removing {name}: job {job['id']} {job.get('status')}")
        return
    job = follow(api, job)
    if json_:
        print_json({**answer, "job": job})
    outcome(job, what=lambda j: f"the removal of {name} (job {j.get('id')})")
    if not json_:
        result(f"{name} is removed")


@app.command()
def extend(
    name: NameArg,
    days: Annotated[int, typer.Option(min=1, help="Expire N days from now.")],
    json_: JsonOpt = False,
) -> None:
    """Move a deployment's expiry to N days from now."""
    d = SESSION.api().post(path_of(name, "extend/"), {"days": days})
    if json_:
        print_json(d)
        return
    result(f"{name} expires {when(d.get('expires_at'))}")


# -- the app's log ---------------------------------------------------------------------------
@app.command()
def logs(
    name: NameArg,
    lines: Annotated[
        int, typer.Option("--lines", "-n", min=1, max=2000, help="The last N lines first.")
    ] = 100,
    follow_: Annotated[
        bool,
        typer.Option("--follow", "-f", help="Then stream new lines (until Ctrl-C); reconnects."),
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """The app's runtime log (the journal of its units); -f: live."""
    api = SESSION.api()
    if follow_:
        AppLog(api, name, lines, json_=json_).run()
        return
    body = api.get(path_of(name, "logs/"), lines=lines)
    got = [str(line) for line in (body or {}).get("lines") or []]
    if json_:
        print_json(got)
        return
    for line in got:
        _emit(line, json_=False)


def _emit(line: str, *, json_: bool) -> None:
    # Written as it is: an app's log is not markup.
    sys.stdout.write((json.dumps(line, ensure_ascii=False) if json_ else line) + "\n")
    sys.stdout.flush()


class AppLog:
    """The log stream (`event: line`), reconnected when it drops or reaches the server's
    time limit. The stream has no event ids, so a reconnect asks for as many old lines as
    were last shown and skips those already printed: no line twice."""

    def __init__(self, api: Api, name: str, lines: int, *, json_: bool) -> None:
        self.api, self.name, self.lines, self.json_ = api, name, lines, json_
        self.recent: deque[str] = deque(maxlen=RECENT_LINES)
        self.connected_once = False
        self.catching_up: list[str] | None = None  # old lines a reconnect sends again

    def run(self) -> None:
        failures = 0
        while True:
            how, wait = self._stream()
            failures = failures + 1 if how == "unreachable" else 0
            if failures > MAX_FAILED_CONNECTS:
                raise CliError(f"cannot reach {self.api.url} to follow the log; giving up")
            time.sleep(wait if wait else min(0.2 * 2**failures, 5.0) if failures else 0.05)

    def _path(self) -> str:
        lines = max(1, len(self.recent)) if self.connected_once else self.lines
        return path_of(self.name, f"logs/?lines={lines}&follow=1")

    def _line(self, text: str) -> None:
        if self.catching_up is not None:
            if text in self.catching_up:  # shown before the reconnect
                del self.catching_up[: self.catching_up.index(text) + 1]
                return
            self.catching_up = None
        self.recent.append(text)
        _emit(text, json_=self.json_)

    def _stream(self) -> tuple[str, float]:
        """How the stream ended ("ended", "dropped", "unreachable", "refused") and how long
        the server asked us to wait before the next try."""
        import httpx

        from ..client import error_from

        connected = False
        try:
            with self.api.stream(self._path(), {"Accept": "text/event-stream"}) as response:
                connected = True
                if response.status_code in (429, 503):
                    after = response.headers.get("Retry-After", "")
                    return "refused", min(float(after), 30.0) if after.isdigit() else 2.0
                if not response.is_success:
                    response.read()
                    raise error_from(response)
                if self.connected_once:
                    self.catching_up = list(self.recent)
                self.connected_once = True
                for event in events(response.iter_lines()):
                    if event.event == "line":
                        self._line(event.data)
        except (httpx.TransportError, httpx.StreamError):
            return ("dropped" if connected else "unreachable"), 0.0
        return "ended", 0.0
