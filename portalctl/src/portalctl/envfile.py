"""The env a deploy sends: `--env KEY=VALUE` and `--env-file FILE`.

A file is a JSON object, a YAML mapping (flat: one `NAME: value` a line) or `KEY=VALUE`
lines (a .env file). Whatever cannot be read exactly is an error that names the line,
never a silent drop (the previous system dropped env and ignored bad JSON), and no error
ever shows a value: values are secrets. Names are checked by the portal.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import CliError, Exit

_DOTENV_LINE = re.compile(r"^(?:export\s+)?(?P<key>[^\s=#'\"]+)\s*=(?P<value>.*)$")
_YAML_LINE = re.compile(
    r"^(?P<key>[^\s:#'\"][^:#]*?|\"[^\"]*\"|'[^']*')\s*:(?:\s+(?P<value>.*?))?\s*$"
)
# YAML that is more than a flat mapping of scalars: block scalars, flow collections,
# anchors, aliases, tags, directives.
_YAML_UNSUPPORTED = ("|", ">", "[", "{", "&", "*", "!", "%", "@", "`")


def _bad(where: str, why: str) -> CliError:
    return CliError(f"{where}: {why}", Exit.USAGE)


def env_options(items: list[str] | None) -> dict[str, str]:
    """`--env KEY=VALUE` (repeatable; a later one wins)."""
    env: dict[str, str] = {}
    for n, item in enumerate(items or [], 1):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            # The text is not echoed: it may be a secret typed without its name.
            raise _bad(f"--env (the {_ordinal(n)} one)", "write it as KEY=VALUE")
        env[key] = value
    return env


def _ordinal(n: int) -> str:
    suffix = {1: "st", 2: "nd", 3: "rd"}.get(n if n < 20 else n % 10, "th")
    return f"{n}{suffix}"


def read_env_file(path: Path) -> dict[str, str]:
    """The env in `path`, whichever of the three forms it is written in."""
    try:
        content = path.expanduser().read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise _bad(f"--env-file {path}", f"cannot read it ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise _bad(f"--env-file {path}", "it is not UTF-8 text") from exc
    return parse_env(content, str(path))


def parse_env(content: str, where: str) -> dict[str, str]:
    lines = content.splitlines()
    first = next((ln.strip() for ln in lines if _meaningful(ln)), "")
    if not first:
        return {}
    if first.startswith("{"):
        return _json_env(content, where)
    if _DOTENV_LINE.match(first):
        return _lines_env(lines, where, _dotenv_pair)
    if _YAML_LINE.match(first):
        return _lines_env(lines, where, _yaml_pair)
    raise _bad(
        where, "not an env file: a JSON object, a YAML mapping (NAME: value) or KEY=VALUE lines"
    )


def _meaningful(line: str) -> bool:
    text = line.strip()
    return bool(text) and not text.startswith("#") and text not in ("---", "...")


# -- JSON ----------------------------------------------------------------------------------
def _json_env(content: str, where: str) -> dict[str, str]:
    try:
        data = json.loads(content, object_pairs_hook=lambda pairs: _unique(pairs, where))
    except json.JSONDecodeError as exc:
        raise _bad(where, f"invalid JSON at line {exc.lineno}, column {exc.colno}") from None
    if not isinstance(data, dict):
        raise _bad(where, "the JSON must be an object of NAME: value")
    return {key: _scalar(value, f"{where}: {key}") for key, value in data.items()}


def _unique(pairs: list[tuple[str, Any]], where: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _bad(where, f"{key} is given twice")
        seen[key] = value
    return seen


def _scalar(value: Any, where: str) -> str:
    """A JSON value as the text of an env variable: strings, numbers and booleans."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return json.dumps(value)
    kind = (
        "an object" if isinstance(value, dict) else "a list" if isinstance(value, list) else "null"
    )
    raise _bad(where, f"the value must be text, a number or a boolean (not {kind})")


# -- lines: KEY=VALUE and NAME: value --------------------------------------------------------
def _lines_env(
    lines: list[str], where: str, pair: Callable[[str, str], tuple[str, str]]
) -> dict[str, str]:
    env: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        if not _meaningful(line):
            continue
        at = f"{where}, line {number}"
        key, value = pair(line, at)
        if key in env:
            raise _bad(at, f"{key} is given twice")
        env[key] = value
    return env


def _dotenv_pair(line: str, at: str) -> tuple[str, str]:
    found = _DOTENV_LINE.match(line.strip())
    if found is None:
        raise _bad(at, "not KEY=VALUE")
    raw = found["value"].strip()
    if raw[:1] in ("'", '"'):
        return found["key"], _quoted(raw, at)
    # An unquoted value ends at a ` #` comment (a `#` inside it stays: pa#ss).
    return found["key"], re.split(r"\s#", raw, maxsplit=1)[0].rstrip()


def _yaml_pair(line: str, at: str) -> tuple[str, str]:
    if line[:1].isspace():
        raise _bad(at, "nested YAML is not an env: one NAME: value a line, no indent")
    found = _YAML_LINE.match(line.rstrip())
    if found is None:
        raise _bad(at, "not NAME: value")
    key = found["key"]
    if key[:1] in ("'", '"'):
        key = _quoted(key, at)
    raw = (found["value"] or "").strip()
    if raw[:1] in ("'", '"'):
        return key, _quoted(raw, at)
    if raw.startswith(_YAML_UNSUPPORTED) or raw.startswith("- "):
        raise _bad(at, f"{key}: only one-line values are read here; put the value in quotes")
    value = re.split(r"\s#", raw, maxsplit=1)[0].rstrip()
    return key, "" if value in ("~", "null") else value


def _quoted(raw: str, at: str) -> str:
    """A single- or double-quoted value, then at most a comment; `'` keeps everything as
    it is ('' for a quote), `"` takes JSON's escapes (\\n, \\", \\\\, \\uXXXX)."""
    quote = raw[0]
    if quote == "'":
        found = re.match(r"^'((?:[^']|'')*)'\s*(?:#.*)?$", raw)
        if found is None:
            raise _bad(at, "a quoted value that does not end where it should")
        return found[1].replace("''", "'")
    found = re.match(r'^("(?:[^"\\]|\\.)*")\s*(?:#.*)?$', raw)
    if found is None:
        raise _bad(at, "a quoted value that does not end where it should")
    try:
        value = json.loads(found[1])
    except json.JSONDecodeError:
        raise _bad(
            at, 'an escape in a quoted value that is not \\n, \\t, \\", \\\\ or \\uXXXX'
        ) from None
    return str(value)
