"""One output convention: a table or a few lines for people, `--json` for scripts (the
API's own objects, unchanged). Tables and colour come from rich; progress and errors go
to stderr, so stdout carries only the result."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

Column = tuple[str, str | Callable[[dict[str, Any]], Any]]


# Piped or redirected, a table is not folded to 80 columns.
PIPE_WIDTH = 200


@cache
def out() -> Console:
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console = Console(highlight=False, soft_wrap=True, width=PIPE_WIDTH)
    return console


@cache
def err() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def text(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(text(v) for v in value) or "-"
    return str(value)


def when(value: Any) -> str:
    """An API timestamp, shortened to the second: 2026-08-01 10:11:12."""
    if not value:
        return "-"
    raw = str(value).replace("T", " ")
    return raw[:19]


def _cell(row: dict[str, Any], getter: str | Callable[[dict[str, Any]], Any]) -> str:
    return text(getter(row) if callable(getter) else row.get(getter))


def table(rows: Iterable[dict[str, Any]], columns: Sequence[Column], *, empty: str) -> None:
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    items = list(rows)
    if not items:
        err().print(empty)
        return
    grid = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for n, (header, _) in enumerate(columns):
        grid.add_column(header, overflow="fold", no_wrap=n == 0)  # the first one names it
    for row in items:
        grid.add_row(*(escape(_cell(row, getter)) for _, getter in columns))
    out().print(grid)


def fields(pairs: Sequence[tuple[str, Any]]) -> None:
    """`label  value` lines, the labels aligned."""
    from rich.markup import escape

    width = max((len(label) for label, _ in pairs), default=0)
    for label, value in pairs:
        out().print(f"[bold]{escape(label.ljust(width))}[/]  {escape(text(value))}")


def say(message: str) -> None:
    """A line for the person at the terminal (stderr: never mixed into results)."""
    err().print(message)


def result(message: str) -> None:
    out().print(message)


def error(message: str, details: Sequence[str] = ()) -> None:
    from rich.markup import escape

    err().print(f"[bold red]error:[/] {escape(message)}")
    for line in details:
        err().print(f"  {escape(line)}")


def listing(
    json_: bool, rows: list[dict[str, Any]], columns: Sequence[Column], *, empty: str
) -> None:
    """A list command's answer: the API's objects as JSON (`--json`), or a table."""
    if json_:
        print_json(rows)
        return
    table(rows, columns, empty=empty)
