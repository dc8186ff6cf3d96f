"""systemd unit files, environment files and command lines, read as systemd reads them.

Covered: sections, comments (``#`` and ``;``), backslash line continuation, repeated
keys (an empty assignment resets a list), ``ExecStart``/``ExecStartPre``/
``ExecStartPost``/``ExecStop``/``ExecReload`` with their ``-@:+!`` prefixes,
``WorkingDirectory`` (``-`` and ``~``), ``Environment`` (quoted assignments),
``EnvironmentFile`` (``-`` for optional), ``Type``, ``RemainAfterExit``, ``PIDFile``,
``TimeoutStopSec``, ``[Install] WantedBy``/``Alias``, the ``%`` specifiers a portal
uses, and ``$VAR``/``${VAR}`` on command lines. ``User``, ``Restart`` and the sandboxing
options are read and ignored (see docs/pvesim.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

Sections = dict[str, dict[str, list[str]]]

LIST_KEYS = frozenset(
    {
        "ExecStart",
        "ExecStartPre",
        "ExecStartPost",
        "ExecStop",
        "ExecReload",
        "Environment",
        "EnvironmentFile",
        "WantedBy",
        "Alias",
    }
)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WHOLE_VAR = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_BRACED_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v"}


class UnitError(ValueError):
    pass


@dataclass
class Command:
    """One ``Exec*=`` line: its words (before ``$VAR`` expansion) and its prefixes."""

    words: list[str]
    ignore_failure: bool = False  # "-"
    argv0: str | None = None  # "@": the second word is argv[0]
    expand_env: bool = True  # ":" turns expansion off


@dataclass
class Unit:
    name: str
    description: str = ""
    type: str = "simple"
    exec_start: list[Command] = field(default_factory=list)
    exec_start_pre: list[Command] = field(default_factory=list)
    exec_start_post: list[Command] = field(default_factory=list)
    exec_stop: list[Command] = field(default_factory=list)
    exec_reload: list[Command] = field(default_factory=list)
    working_directory: str | None = None
    working_directory_optional: bool = False
    environment: dict[str, str] = field(default_factory=dict)
    environment_files: list[tuple[str, bool]] = field(default_factory=list)  # (path, optional)
    remain_after_exit: bool = False
    pid_file: str | None = None
    timeout_stop: float = 10.0
    wanted_by: list[str] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)
    package: str | None = None  # X-Pvesim-Package: a package service that is only recorded

    @property
    def record_only(self) -> bool:
        return self.package is not None or not self.exec_start


def unit_name(name: str) -> str:
    """``app`` -> ``app.service``; other suffixes stay."""
    if re.search(r"\.(service|socket|target|timer|path|mount|slice|scope)$", name):
        return name
    return name + ".service"


def parse_sections(text: str) -> Sections:
    """Section -> key -> values in order; an empty value of a list key resets the list."""
    out: Sections = {}
    section: dict[str, list[str]] | None = None
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        while line.endswith("\\") and i < len(lines):
            nxt = lines[i].strip()
            i += 1
            if nxt.startswith(("#", ";")):
                continue
            line = line[:-1] + " " + nxt
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = out.setdefault(line[1:-1].strip(), {})
            continue
        if section is None or "=" not in line:
            raise UnitError(f"line {i}: expected KEY=VALUE inside a [Section]")
        key, _, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if key in LIST_KEYS and value == "":
            section[key] = []
        else:
            section.setdefault(key, []).append(value)
    return out


def parse_bool(value: str) -> bool:
    return value.strip().lower() in ("1", "yes", "true", "on")


def parse_timespan(value: str) -> float:
    """``90``, ``90s``, ``1min 30s``, ``500ms``, ``infinity`` -> seconds."""
    value = value.strip().lower()
    if value in ("infinity", "0"):
        return 0.0 if value == "0" else float("inf")
    units = {
        "us": 1e-6,
        "ms": 1e-3,
        "s": 1.0,
        "sec": 1.0,
        "second": 1.0,
        "seconds": 1.0,
        "m": 60.0,
        "min": 60.0,
        "minute": 60.0,
        "minutes": 60.0,
        "h": 3600.0,
        "hr": 3600.0,
        "hour": 3600.0,
        "hours": 3600.0,
        "": 1.0,
    }
    total = 0.0
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value)
    if not parts:
        raise UnitError(f"invalid time span {value!r}")
    for number, unit in parts:
        if unit not in units:
            raise UnitError(f"invalid time span {value!r}")
        total += float(number) * units[unit]
    return total


def split_words(text: str) -> list[str]:
    """systemd's word splitting: whitespace, "double" and 'single' quotes, C escapes."""
    words: list[str] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            break
        word: list[str] = []
        quote: str | None = None
        while i < n:
            c = text[i]
            if quote is None and c.isspace():
                break
            i += 1
            if c == "\\" and i < n:
                nxt = text[i]
                i += 1
                word.append(_ESCAPES.get(nxt, nxt))
            elif quote is not None and c == quote:
                quote = None
            elif quote is None and c in "\"'":
                quote = c
            else:
                word.append(c)
        if quote is not None:
            raise UnitError(f"unbalanced quotes in {text!r}")
        words.append("".join(word))
    return words


def parse_command(value: str) -> Command:
    cmd = Command(words=[])
    i = 0
    while i < len(value) and value[i] in "-@:+!":
        if value[i] == "-":
            cmd.ignore_failure = True
        elif value[i] == ":":
            cmd.expand_env = False
        elif value[i] == "@":
            cmd.argv0 = ""
        i += 1
    words = split_words(value[i:])
    if not words:
        raise UnitError(f"empty command line {value!r}")
    if cmd.argv0 is not None:
        if len(words) < 2:
            raise UnitError(f"'@' needs a path and an argv[0]: {value!r}")
        cmd.argv0 = words.pop(1)
    cmd.words = words
    return cmd


def expand_words(cmd: Command, env: dict[str, str]) -> list[str]:
    """``$VAR`` alone as a word -> its value split at whitespace; ``${VAR}`` anywhere ->
    its exact value, one word."""
    if not cmd.expand_env:
        return list(cmd.words)
    out: list[str] = []
    for word in cmd.words:
        whole = _WHOLE_VAR.fullmatch(word)
        if whole:
            out.extend(env.get(whole.group(1), "").split())
            continue
        out.append(_BRACED_VAR.sub(lambda m: env.get(m.group(1), ""), word))
    return out


def specifiers(text: str, values: dict[str, str]) -> str:
    """``%n``, ``%N``, ``%p``, ``%i``, ``%h``, ``%u``, ``%t``, ``%%``; others stay as written."""
    return re.sub(r"%(.)", lambda m: values.get(m.group(1), m.group(0)), text)


def parse_environment(values: list[str]) -> dict[str, str]:
    """``Environment=`` lines: space-separated ``KEY=VALUE`` words, quotes allowed."""
    env: dict[str, str] = {}
    for value in values:
        for word in split_words(value):
            key, sep, val = word.partition("=")
            if sep and _NAME.fullmatch(key):
                env[key] = val
    return env


def parse_env_file(text: str) -> dict[str, str]:
    """An ``EnvironmentFile``: ``KEY=VALUE`` lines; values bare, 'single-quoted' (literal)
    or "double-quoted" (backslash escapes ``\\`` ``"`` ``$`` and a backtick); comments."""
    env: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t\r\n":
            i += 1
        line_end = text.find("\n", i)
        line_end = n if line_end < 0 else line_end
        eq = text.find("=", i, line_end)
        if i >= n or text[i] in "#;" or eq < 0:
            i = line_end + 1
            continue
        key = text[i:eq].strip()
        if key.startswith("export "):
            key = key[len("export ") :].strip()
        value, i = _env_value(text, eq + 1)
        if _NAME.fullmatch(key):
            env[key] = value
    return env


def _env_value(text: str, i: int) -> tuple[str, int]:
    """One value from ``i`` to the end of its (logical) line; returns (value, next index)."""
    n = len(text)
    while i < n and text[i] in " \t":
        i += 1
    out: list[str] = []
    bare_tail = 0  # trailing unquoted whitespace to drop
    while i < n and text[i] != "\n":
        c = text[i]
        if c == "'":
            close = text.find("'", i + 1)
            close = n if close < 0 else close
            out.append(text[i + 1 : close])
            i, bare_tail = close + 1, 0
        elif c == '"':
            i += 1
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n:
                    nxt = text[i + 1]
                    if nxt == "\n":
                        pass
                    elif nxt in '"\\`$':
                        out.append(nxt)
                    else:
                        out.append("\\" + nxt)
                    i += 2
                    continue
                out.append(text[i])
                i += 1
            i, bare_tail = i + 1, 0
        elif c == "\\" and i + 1 < n:
            if text[i + 1] != "\n":
                out.append(text[i + 1])
            i, bare_tail = i + 2, 0
        else:
            out.append(c)
            bare_tail = bare_tail + 1 if c in " \t" else 0
            i += 1
    value = "".join(out)
    if bare_tail:
        value = value[:-bare_tail]
    return value, i + 1


def load_unit(name: str, text: str) -> Unit:
    """A parsed unit; ``UnitError`` for what systemd would refuse to load."""
    sections = parse_sections(text)
    unit = Unit(name=name)
    head = sections.get("Unit", {})
    svc = sections.get("Service", {})
    inst = sections.get("Install", {})
    unit.description = _last(head, "Description") or ""
    unit.type = (_last(svc, "Type") or "simple").lower()
    for key, attr in (
        ("ExecStart", "exec_start"),
        ("ExecStartPre", "exec_start_pre"),
        ("ExecStartPost", "exec_start_post"),
        ("ExecStop", "exec_stop"),
        ("ExecReload", "exec_reload"),
    ):
        setattr(unit, attr, [parse_command(v) for v in svc.get(key, [])])
    if len(unit.exec_start) > 1 and unit.type != "oneshot":
        raise UnitError(
            f"{name}: Service has more than one ExecStart= setting, which is only allowed "
            "for Type=oneshot services. Refusing."
        )
    wd = _last(svc, "WorkingDirectory")
    if wd:
        unit.working_directory_optional = wd.startswith("-")
        unit.working_directory = wd.lstrip("-") or None
    unit.environment = parse_environment(svc.get("Environment", []))
    for value in svc.get("EnvironmentFile", []):
        unit.environment_files.append((value.lstrip("-"), value.startswith("-")))
    unit.remain_after_exit = parse_bool(_last(svc, "RemainAfterExit") or "no")
    unit.pid_file = _last(svc, "PIDFile")
    timeout = _last(svc, "TimeoutStopSec") or _last(svc, "TimeoutSec")
    if timeout:
        unit.timeout_stop = parse_timespan(timeout)
    unit.wanted_by = [w for v in inst.get("WantedBy", []) for w in v.split()]
    unit.aliases = [a for v in inst.get("Alias", []) for a in v.split()]
    unit.package = _last(svc, "X-Pvesim-Package")
    return unit


def _last(section: dict[str, list[str]], key: str) -> str | None:
    values = section.get(key)
    return values[-1] if values else None
