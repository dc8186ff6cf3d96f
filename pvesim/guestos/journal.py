"""The ``journalctl`` stand-in: ``-u UNIT`` (repeatable), ``-n N``, ``-f``; the unit's log
is its processes' own output plus systemd's start and stop lines (as ``-o cat`` shows
the real journal, with systemd's own lines in the short format)."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .layout import Layout
from .units import unit_name

_VALUED = frozenset({"-u", "--unit", "-n", "--lines", "-o", "--output", "-S", "--since"})
_VALUED |= frozenset({"-U", "--until", "-p", "--priority", "-t", "--identifier", "-b", "--boot"})
FOLLOW_POLL = 0.2


@dataclass
class JournalArgs:
    units: list[str] = field(default_factory=list)
    lines: int | None = None  # None: everything (or 10 with -f)
    follow: bool = False


def parse_args(argv: list[str]) -> JournalArgs:
    args = JournalArgs()
    i = 0
    while i < len(argv):
        word = argv[i]
        i += 1
        name, eq, value = word.partition("=")
        if not eq and len(word) > 2 and word[:2] in ("-u", "-n") and word[1] != "-":
            name, value, eq = word[:2], word[2:], "="
        if name in _VALUED and not eq:
            if name in ("-n", "--lines", "-b", "--boot") and (
                i >= len(argv) or argv[i].startswith("-")
            ):
                value = ""  # -n and -b take an optional value
            else:
                value = argv[i] if i < len(argv) else ""
                i += 1
        if name in ("-u", "--unit"):
            args.units.append(unit_name(value))
        elif name in ("-n", "--lines"):
            args.lines = int(value) if value.lstrip("+").isdigit() else 10
        elif name in ("-e", "--pager-end"):
            args.lines = 1000 if args.lines is None else args.lines
        elif name in ("-f", "--follow"):
            args.follow = True
        elif len(name) > 2 and name[0] == "-" and name[1] != "-" and "f" in name[1:]:
            args.follow = True  # short flags run together, such as -xf
    return args


def _logs(layout: Layout, units: list[str]) -> list[Path]:
    if units:
        return [layout.journal / f"{u}.log" for u in units]
    if not layout.journal.is_dir():
        return []
    return sorted(layout.journal.glob("*.log"))


def main(argv: list[str], layout: Layout) -> int:
    args = parse_args(argv)
    paths = _logs(layout, args.units)
    lines: list[str] = []
    for path in paths:
        try:
            lines.extend(path.read_text(errors="replace").splitlines())
        except OSError:
            continue
    limit = args.lines if args.lines is not None else (10 if args.follow else None)
    shown = lines if limit is None else lines[-limit:] if limit > 0 else []
    try:
        if not shown and not args.follow:
            print("-- No entries --")
        for line in shown:
            print(line)
        sys.stdout.flush()
        if args.follow:
            _follow(paths)
    except (BrokenPipeError, KeyboardInterrupt):
        _quiet_exit()
    return 0


def _follow(paths: list[Path]) -> None:
    """Print what is appended to the logs until the reader goes (its session ended)."""
    offsets = {p: _size(p) for p in paths}
    parent = os.getppid()
    while os.getppid() == parent:
        wrote = False
        for path in paths:
            size = _size(path)
            if size < offsets[path]:
                offsets[path] = 0  # truncated: read from the start
            if size > offsets[path]:
                with open(path, "rb") as fh:
                    fh.seek(offsets[path])
                    chunk = fh.read(size - offsets[path])
                offsets[path] = size
                sys.stdout.write(chunk.decode(errors="replace"))
                wrote = True
        if wrote:
            sys.stdout.flush()
        time.sleep(FOLLOW_POLL)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _quiet_exit() -> None:
    """Leave without Python's complaint about a closed stdout."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass
