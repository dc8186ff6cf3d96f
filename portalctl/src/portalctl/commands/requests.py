"""requests list|create: ask the operators for more quota, or for a bigger container."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ..errors import CliError, Exit
from ..output import listing, print_json, say, text, when
from ..resolve import container
from ..state import SESSION
from ._common import JsonOpt
from .containers import CoresOpt, DiskOpt, MemoryOpt, SwapOpt, size_gib, size_mib

app = typer.Typer(no_args_is_help=True, help="Ask for more quota or a bigger container.")


def _wanted(r: dict[str, Any]) -> str:
    if r.get("kind") == "quota":
        return ", ".join(f"{k}={v}" for k, v in (r.get("limits") or {}).items())
    parts = [(k, r.get(k)) for k in ("cores", "memory_mib", "swap_mib", "disk_gib")]
    return ", ".join(f"{k}={v}" for k, v in parts if v is not None)


@app.command("list")
def list_(
    status: Annotated[str | None, typer.Option(help="pending, approved, denied...")] = None,
    json_: JsonOpt = False,
) -> None:
    """Your resource requests and their outcome (staff: everyone's)."""
    rows = list(SESSION.api().pages("resource-requests/", status=status))
    listing(
        json_,
        rows,
        [
            ("ID", "id"),
            ("KIND", "kind"),
            ("USER", "user"),
            ("CONTAINER", "container_hostname"),
            ("WANTED", _wanted),
            ("STATUS", "status"),
            ("CREATED", lambda r: when(r.get("created_at"))),
            ("DECIDED BY", "decided_by"),
            ("NOTE", lambda r: text(r.get("decision_note"))),
        ],
        empty="no resource requests",
    )


def _limits(pairs: list[str] | None) -> dict[str, int]:
    limits: dict[str, int] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not value.strip().isdigit():
            raise CliError(
                f"--limit is NAME=NUMBER, e.g. max_memory_mib=16384 (got {pair!r})", Exit.USAGE
            )
        limits[key.strip()] = int(value)
    return limits


@app.command()
def create(
    reason: Annotated[str, typer.Option(help="Why: the operators read this.")],
    limit: Annotated[
        list[str] | None,
        typer.Option(
            help="For more quota: a limit wanted, e.g. max_memory_mib=16384 (repeatable)."
        ),
    ] = None,
    container_name: Annotated[
        str | None, typer.Option("--container", "-c", help="For a bigger container: which one.")
    ] = None,
    cores: CoresOpt = None,
    memory: MemoryOpt = None,
    swap: SwapOpt = None,
    disk: DiskOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Ask for more quota (--limit ...) or for a container to grow (--container NAME
    with --cores/--memory/--swap/--disk). An operator approves or denies it."""
    api = SESSION.api()
    body: dict[str, Any] = {"reason": reason}
    if container_name:
        if limit:
            raise CliError(
                "ask for quota (--limit) or a resize (--container), not both", Exit.USAGE
            )
        sizes = {
            "cores": cores,
            "memory_mib": size_mib(memory, "--memory"),
            "swap_mib": size_mib(swap, "--swap"),
            "disk_gib": size_gib(disk, "--disk"),
        }
        body.update(kind="resize", container=container(api, container_name)["id"])
        body.update({k: v for k, v in sizes.items() if v is not None})
    elif limit:
        body.update(kind="quota", limits=_limits(limit))
    else:
        raise CliError(
            "say what you need: --limit NAME=N, or --container NAME with sizes", Exit.USAGE
        )
    row = api.post("resource-requests/", body)
    if json_:
        print_json(row)
        return
    say(f"Request {row['id']} ({row['kind']}: {_wanted(row)}) is {row['status']}")
