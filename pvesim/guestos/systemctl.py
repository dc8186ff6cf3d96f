"""The ``systemctl`` stand-in: verbs, options and output as systemd 252 prints them.

``daemon-reload``, ``start``, ``stop``, ``restart`` (and ``try-restart``,
``reload-or-restart``), ``reload``, ``enable [--now]``, ``disable [--now]``,
``is-active``, ``is-enabled``, ``is-failed``, ``status``, ``reset-failed``,
``list-units``, ``list-unit-files``; options it does not need are accepted and ignored.
Also ``service NAME VERB``.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

from .layout import Layout
from .service import Found, ServiceError, ServiceManager
from .units import unit_name

VERSION = "systemd 252 (252.33-1~deb12u1)"
# Options that take a value (as a separate word when not given as --opt=value).
_VALUED = frozenset(
    {"-t", "--type", "--state", "-p", "--property", "-n", "--lines", "-o", "--output", "-H"}
)
_VERBS = frozenset(
    {
        "daemon-reload",
        "daemon-reexec",
        "start",
        "stop",
        "restart",
        "try-restart",
        "reload-or-restart",
        "try-reload-or-restart",
        "reload",
        "enable",
        "disable",
        "is-active",
        "is-enabled",
        "is-failed",
        "status",
        "reset-failed",
        "list-units",
        "list-unit-files",
        "show",
        "cat",
    }
)


@dataclass
class Args:
    verb: str = ""
    units: list[str] = field(default_factory=list)
    now: bool = False
    quiet: bool = False
    lines: int = 10
    version: bool = False


def parse_args(argv: list[str]) -> Args:
    """Verb, unit names (``.service`` added) and the options that matter."""
    args = Args()
    words: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        i += 1
        if word == "--":
            words.extend(argv[i:])
            break
        if not word.startswith("-") or word == "-":
            words.append(word)
            continue
        name, eq, value = word.partition("=")
        if name in _VALUED and not eq:
            value = argv[i] if i < len(argv) else ""
            i += 1
        if name == "--now":
            args.now = True
        elif name in ("-q", "--quiet"):
            args.quiet = True
        elif name == "--version":
            args.version = True
        elif name in ("-n", "--lines"):
            args.lines = int(value) if value.isdigit() else args.lines
        elif name.startswith("-n") and name[2:].isdigit():
            args.lines = int(name[2:])
    if words:
        args.verb = words[0]
        args.units = [unit_name(w) for w in words[1:]]
    return args


def main(argv: list[str], layout: Layout) -> int:
    args = parse_args(argv)
    if args.version:
        print(VERSION)
        return 0
    if not args.verb:
        print("systemctl: a verb is needed (pvesim stand-in: see docs/pvesim.md)", file=sys.stderr)
        return 1
    if args.verb not in _VERBS:
        print(f"Unknown command verb {args.verb}.", file=sys.stderr)
        return 1
    manager = ServiceManager(layout)
    try:
        return _run(manager, args)
    except ServiceError as exc:
        print(exc.message, file=sys.stderr)
        return exc.code


def _run(manager: ServiceManager, args: Args) -> int:
    verb = args.verb
    if verb in ("daemon-reload", "daemon-reexec"):
        return 0
    if verb in ("list-units", "list-unit-files"):
        return _list(manager, verb)
    if verb in ("is-active", "is-failed", "is-enabled"):
        return _query(manager, args)
    if verb == "status":
        return _status_all(manager, args)
    if not args.units:
        print(f"Too few arguments for '{verb}'.", file=sys.stderr)
        return 1
    code = 0
    for name in args.units:
        try:
            _act(manager, verb, name, args)
        except ServiceError as exc:
            print(exc.message, file=sys.stderr)
            code = code or exc.code
    return code


def _act(manager: ServiceManager, verb: str, name: str, args: Args) -> None:
    if verb == "start":
        manager.start(name)
    elif verb == "stop":
        manager.stop(name)
    elif verb in ("restart", "reload-or-restart"):
        manager.restart(name)
    elif verb in ("try-restart", "try-reload-or-restart"):
        if manager.state(manager.need(name, "restart").name) == "active":
            manager.restart(name)
    elif verb == "reload":
        manager.reload(name)
    elif verb == "reset-failed":
        if manager.state(name) == "failed":
            manager.stop(name)
    elif verb == "show":
        found = manager.need(name, "show")
        print(f"Id={found.name}\nActiveState={manager.state(found.name)}")
        print(f"MainPID={manager.main_pid(found.name) or 0}")
    elif verb == "cat":
        found = manager.need(name, "cat")
        print(f"# {manager.layout.display(found.path)}")
        print(found.path.read_text(), end="")
    elif verb in ("enable", "disable"):
        messages = manager.enable(name) if verb == "enable" else manager.disable(name)
        for line in messages:
            print(line, file=sys.stderr)
        if args.now:
            (manager.start if verb == "enable" else manager.stop)(name)


def _query(manager: ServiceManager, args: Args) -> int:
    if not args.units:
        print(f"Too few arguments for '{args.verb}'.", file=sys.stderr)
        return 1
    code = 3 if args.verb != "is-enabled" else 1
    for name in args.units:
        found = manager.find(name)
        if args.verb == "is-enabled":
            if found is None:
                print(f"Failed to get unit file state for {name}: No such file or directory")
                continue
            answer = _enablement(manager, found)
            ok = answer == "enabled"
        else:
            answer = manager.state(found.name if found else name)
            ok = answer == ("failed" if args.verb == "is-failed" else "active")
        if not args.quiet:
            print(answer)
        if ok:
            code = 0
    return code


def _enablement(manager: ServiceManager, found: Found) -> str:
    if manager.enabled(found):
        return "enabled"
    if not found.unit.wanted_by and not found.unit.aliases:
        return "static"
    return "disabled"


def _status_all(manager: ServiceManager, args: Args) -> int:
    names = args.units or [n for n in manager.all_units() if manager.state(n) != "inactive"]
    code = 0
    for i, name in enumerate(names):
        if i:
            print()
        code = max(code, _status(manager, name, args.lines))
    return code


def _status(manager: ServiceManager, name: str, lines: int) -> int:
    found = manager.find(name)
    if found is None:
        print(f"Unit {name} could not be found.", file=sys.stderr)
        return 4
    state = manager.state(found.name)
    pid = manager.main_pid(found.name)
    dot = {"active": "\u25cf", "failed": "\u00d7"}.get(state, "\u25cb")
    title = f" - {found.unit.description}" if found.unit.description else ""
    print(f"{dot} {found.name}{title}")
    where = manager.layout.display(found.path)
    enabled = _enablement(manager, found)
    print(f"     Loaded: loaded ({where}; {enabled}; preset: enabled)")
    since = manager.since(found.name)
    when = ""
    if since is not None and state != "inactive":
        stamp = time.strftime("%a %Y-%m-%d %H:%M:%S %Z", time.localtime(since))
        when = f" since {stamp}; {_ago(time.time() - since)} ago"
    sub = {"active": "running" if pid else "exited", "failed": "failed"}.get(state, "dead")
    print(f"     Active: {state} ({sub}){when}")
    if pid:
        print(f"   Main PID: {pid} ({_comm(pid)})")
    tail = _tail(manager, found.name, lines)
    if tail:
        print()
        print("\n".join(tail))
    return {"active": 0, "failed": 3}.get(state, 3)


def _list(manager: ServiceManager, verb: str) -> int:
    names = manager.all_units()
    if verb == "list-unit-files":
        print(f"{'UNIT FILE':<40} STATE")
        for name in names:
            found = manager.find(name)
            print(f"{name:<40} {_enablement(manager, found) if found else 'bad'}")
        print(f"\n{len(names)} unit files listed.")
        return 0
    print(f"  {'UNIT':<38} LOAD   ACTIVE SUB     DESCRIPTION")
    shown = 0
    for name in names:
        state = manager.state(name)
        if state == "inactive":
            continue
        found = manager.find(name)
        sub = "running" if manager.main_pid(name) else ("exited" if state == "active" else state)
        desc = found.unit.description if found else ""
        print(f"  {name:<38} loaded {state:<6} {sub:<7} {desc}")
        shown += 1
    print(f"\n{shown} loaded units listed.")
    return 0


def _tail(manager: ServiceManager, name: str, lines: int) -> list[str]:
    if lines <= 0:
        return []
    try:
        text = manager.log_path(name).read_text(errors="replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as fh:
            return fh.read().strip()
    except OSError:
        return "?"


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}min {seconds % 60}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60}min"


def service_main(argv: list[str], layout: Layout) -> int:
    """``service NAME start|stop|restart|reload|status`` -> systemctl."""
    if len(argv) < 2:
        print("Usage: service < option > | --status-all | [ service_name [ command ] ]")
        return 1
    return main([argv[1], argv[0], *argv[2:]], layout)
