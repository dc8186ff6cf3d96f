"""jobs list|show|logs."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from ..display import LogLines, log_line
from ..follow import Follower, outcome
from ..output import fields, listing, out, print_json, table, text, when
from ..resolve import container
from ..state import SESSION
from ._common import JsonOpt

app = typer.Typer(no_args_is_help=True, help="A job's steps and its log (live with -f).")

JobArg = Annotated[str, typer.Argument(metavar="ID", help="The job's id.")]


@app.command("list")
def list_(
    container_name: Annotated[
        str | None, typer.Option("--container", "-c", help="One container's jobs.")
    ] = None,
    status: Annotated[
        str | None, typer.Option(help="queued, running, succeeded, failed...")
    ] = None,
    kind: Annotated[str | None, typer.Option(help="create, start, stop, resize...")] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=200, help="At most this many, newest first.")
    ] = 20,
    json_: JsonOpt = False,
) -> None:
    """Jobs of your containers, newest first."""
    api = SESSION.api()
    cid = container(api, container_name)["id"] if container_name else None
    body = api.get("jobs/", container=cid, status=status, kind=kind, page_size=limit)
    rows = body.get("results", [])
    listing(
        json_,
        rows,
        [
            ("ID", "id"),
            ("KIND", "kind"),
            ("CONTAINER", "container_hostname"),
            ("STATUS", "status"),
            ("BY", "actor"),
            ("CREATED", lambda j: when(j.get("created_at"))),
            ("ERROR", "error"),
        ],
        empty="no jobs",
    )


@app.command()
def show(job_id: JobArg, json_: JsonOpt = False) -> None:
    """A job: its status, its steps and any error."""
    job = SESSION.api().get(f"jobs/{job_id}/")
    if json_:
        print_json(job)
        return
    fields(
        [
            ("job", job.get("id")),
            ("kind", job.get("kind")),
            ("container", job.get("container_hostname")),
            ("status", f"{job.get('status')} ({job.get('progress')}%)"),
            ("by", job.get("actor")),
            ("attempts", job.get("attempts")),
            ("created", when(job.get("created_at"))),
            ("started", when(job.get("started_at"))),
            ("finished", when(job.get("finished_at"))),
            ("error", (f"{job['error']} [{job.get('error_code')}]" if job.get("error") else None)),
        ]
    )
    table(
        job.get("steps") or [],
        [
            ("STEP", lambda s: s.get("title") or s.get("name")),
            ("STATE", "state"),
            ("STARTED", lambda s: when(s.get("started_at"))[11:]),
            ("FINISHED", lambda s: when(s.get("finished_at"))[11:]),
        ],
        empty="no steps",
    )


@app.command()
def logs(
    job_id: JobArg,
    follow_: Annotated[
        bool,
        typer.Option(
            "--follow",
            "-f",
            help="Stream new entries until the job ends (resumes after a dropped "
            "connection); exit 6 if the job failed.",
        ),
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """A job's log, oldest first (-f: live)."""
    api = SESSION.api()
    if follow_:
        job = api.get(f"jobs/{job_id}/")
        display: Any = _JsonLines() if json_ else LogLines()
        final = Follower(api, job, display).run()
        outcome(final)
        return
    entries: list[dict[str, Any]] = []
    after = 0
    while True:  # the API gives at most 1000 entries a call
        batch = api.get(f"jobs/{job_id}/log/", after=after)
        entries.extend(batch)
        if len(batch) < 1000:
            break
        after = int(batch[-1]["id"])
    if json_:
        print_json(entries)
        return
    for entry in entries:
        out().print(text(log_line(entry)), markup=False)


class _JsonLines:
    """`logs -f --json`: one log entry object per line, as it comes."""

    def job(self, job: dict[str, Any]) -> None:
        pass

    def log(self, entry: dict[str, Any]) -> None:
        import json

        sys.stdout.write(json.dumps(entry, ensure_ascii=False) + "\n")
        sys.stdout.flush()

    def close(self) -> None:
        pass
