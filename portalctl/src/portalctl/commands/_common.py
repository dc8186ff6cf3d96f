"""Options and helpers every command group shares."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from ..errors import CliError, Exit
from ..state import SESSION

JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print the API's objects as JSON (for scripts).")
]
WaitOpt = Annotated[
    bool, typer.Option("--wait", "-w", help="Follow the job until it ends (exit 6 if it fails).")
]


def complete_container(incomplete: str) -> list[str]:
    """Shell completion of container names (quietly nothing when the portal cannot say)."""
    try:
        api = SESSION.api()
        return sorted(
            str(c["hostname"])
            for c in api.pages("containers/", hostname=incomplete or None)
            if str(c["hostname"]).startswith(incomplete)
        )
    except Exception:  # completion must never print an error into the shell
        return []


NameArg = Annotated[
    str,
    typer.Argument(
        metavar="NAME",
        help="The container: its hostname or VMID (site/hostname where two sites share it).",
        autocompletion=complete_container,
    ),
]


def read_secret(label: str) -> str:
    """A secret from the terminal without echo, or the next line of stdin in a script."""
    if sys.stdin.isatty():
        return str(typer.prompt(label, hide_input=True))
    return read_line(label)


def read_line(label: str, *, default: str | None = None) -> str:
    if sys.stdin.isatty():
        return str(typer.prompt(label, default=default))
    line = sys.stdin.readline()
    if not line:
        if default is not None:
            return default
        raise CliError(f"{label.lower()} is needed: stdin ended", Exit.USAGE)
    return line.rstrip("\r\n")


def confirm(question: str, *, yes: bool) -> None:
    """Go on only if `--yes` was given or the person at the terminal agrees."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise CliError(f"{question} Pass --yes to confirm without a terminal.", Exit.USAGE)
    if not typer.confirm(question, default=False):
        raise CliError("nothing done", Exit.ERROR)


def id_of(obj: dict[str, Any]) -> str:
    return str(obj.get("id"))
