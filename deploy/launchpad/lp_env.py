"""The action's `env` input: a JSON object or a YAML mapping of `NAME: value` lines.

The runner has no YAML library we can count on (portalctl's venv holds typer, rich, httpx
and platformdirs), so this reads the part of YAML an env block uses: one `NAME: value`
per line, plain, 'single'- or "double"-quoted values, `|` and `>` block scalars, comments.
Anything else (nesting, lists, anchors, flow mappings) is refused with the line number:
a value is never guessed at, and never dropped (the previous system lost env values to a
field name mismatch and ignored bad JSON).

No message here ever contains a value: they are secrets more often than not.
"""

from __future__ import annotations

import json
import re
from typing import Any

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LINE = re.compile(r"(?P<name>[^\s:#][^:]*?)\s*:(?:[ \t]+(?P<rest>.*))?")
_BLOCK = re.compile(r"(?P<style>[|>])(?P<chomp>[+-]?)(?P<indent>[1-9]?)[+-]?(?:[ \t]+#.*)?")
_ESCAPES = {
    "0": "\0", "a": "\a", "b": "\b", "t": "\t", "\t": "\t", "n": "\n", "v": "\v",
    "f": "\f", "r": "\r", "e": "\x1b", " ": " ", '"': '"', "/": "/", "\\": "\\",
    "N": "\x85", "_": "\xa0", "L": "\u2028", "P": "\u2029",
}  # fmt: skip
_HEX = {"x": 2, "u": 4, "U": 8}
_INDICATORS = "[]{}&*!%@`"


class EnvError(ValueError):
    """The env input cannot be read; the message names the line or the name, never a value."""


def parse_env(text: str) -> dict[str, str]:
    """The env input as NAME -> value. Empty input is no env."""
    stripped = text.strip()
    if not stripped:
        return {}
    if stripped.startswith("{"):
        return _from_json(stripped)
    return _from_yaml(text)


def _from_json(text: str) -> dict[str, str]:
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in items:
            if key in seen:
                raise EnvError(f"env: {key} is given twice")
            seen[key] = value
        return seen

    try:
        data = json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        # exc.msg and the position only: the document itself may hold secrets.
        raise EnvError(
            f"env is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    out: dict[str, str] = {}
    for key, value in data.items():
        _check_name(key)
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, str):
            out[key] = value
        elif isinstance(value, int | float):
            out[key] = json.dumps(value)
        else:
            raise EnvError(f"env: {key} must be a string, a number or a boolean")
    return out


def _check_name(name: str, where: str = "env") -> None:
    # A wrong name is not repeated either: it may be a value typed in the wrong place.
    if not NAME.fullmatch(name):
        raise EnvError(
            f"{where}: a name that is not a variable name (letters, digits and _, "
            "not starting with a digit)"
        )


def _from_yaml(text: str) -> dict[str, str]:
    lines = text.splitlines()
    out: dict[str, str] = {}
    i = 0
    while i < len(lines):
        line = lines[i]
        number = i + 1
        i += 1
        if not line.strip() or line.lstrip().startswith("#") or line.rstrip() == "---":
            continue
        if line[0] in " \t":
            raise EnvError(
                f"env line {number}: an indented line: nested values are not supported "
                "(quote a value, or use | for several lines)"
            )
        match = _LINE.fullmatch(line.rstrip())
        if not match:
            raise EnvError(
                f"env line {number}: expected `NAME: value` (env is a YAML mapping or a "
                "JSON object)"
            )
        name = match["name"]
        _check_name(name, f"env line {number}")
        if name in out:
            raise EnvError(f"env line {number}: {name} is given twice")
        rest = (match["rest"] or "").strip()
        block = _BLOCK.fullmatch(rest)
        if block:
            value, i = _block_scalar(lines, i, block, name)
        else:
            value = _scalar(rest, name, number)
        out[name] = value
    return out


def _scalar(rest: str, name: str, number: int) -> str:
    where = f"env line {number} ({name})"
    if not rest or rest.startswith("#") or rest in ("~", "null", "Null", "NULL"):
        raise EnvError(f'{where}: no value (write {name}: "" for an empty one)')
    if rest[0] == '"':
        value, end = _double_quoted(rest, where)
    elif rest[0] == "'":
        value, end = _single_quoted(rest, where)
    else:
        if rest[0] in _INDICATORS or rest.startswith(("- ", "? ")) or rest == "-":
            raise EnvError(f"{where}: lists, mappings, anchors and tags are not supported")
        plain = re.split(r"[ \t]#", rest, maxsplit=1)[0].rstrip()
        if ": " in plain or plain.endswith(":"):
            raise EnvError(f"{where}: a value with `: ` in it must be quoted")
        return plain
    tail = rest[end:].strip()
    if tail and not tail.startswith("#"):
        raise EnvError(f"{where}: text after the closing quote")
    return value


def _double_quoted(rest: str, where: str) -> tuple[str, int]:
    out: list[str] = []
    i = 1
    while i < len(rest):
        ch = rest[i]
        if ch == '"':
            # \ud83d\ude80 (JSON's way to write one character past U+FFFF) is one character.
            text = "".join(out).encode("utf-16", "surrogatepass").decode("utf-16", "replace")
            return text, i + 1
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        code = rest[i + 1 : i + 2]
        if code in _ESCAPES:
            out.append(_ESCAPES[code])
            i += 2
        elif code in _HEX:
            digits = rest[i + 2 : i + 2 + _HEX[code]]
            if len(digits) != _HEX[code] or not re.fullmatch(r"[0-9A-Fa-f]+", digits):
                raise EnvError(f"{where}: a bad \\{code} escape")
            out.append(chr(int(digits, 16)))
            i += 2 + _HEX[code]
        else:
            raise EnvError(f"{where}: an unknown escape in a double-quoted value")
    raise EnvError(f"{where}: the double quote is not closed (on the same line)")


def _single_quoted(rest: str, where: str) -> tuple[str, int]:
    out: list[str] = []
    i = 1
    while i < len(rest):
        if rest[i] == "'":
            if rest[i + 1 : i + 2] == "'":
                out.append("'")
                i += 2
                continue
            return "".join(out), i + 1
        out.append(rest[i])
        i += 1
    raise EnvError(f"{where}: the single quote is not closed (on the same line)")


def _block_scalar(
    lines: list[str], start: int, header: re.Match[str], name: str
) -> tuple[str, int]:
    """A `|` (literal) or `>` (folded) block: the indented lines after `start`."""
    body: list[str] = []
    i = start
    while i < len(lines) and (not lines[i].strip() or lines[i][0] in " \t"):
        body.append(lines[i])
        i += 1
    while body and not body[-1].strip():  # trailing blank lines: only `+` keeps them
        body.pop()
    kept_blank = i - start - len(body)
    if not body:
        raise EnvError(f'env: {name}: an empty block (write {name}: "" for an empty one)')
    indent = int(header["indent"]) if header["indent"] else _indent_of(body)
    content: list[str] = []
    for number, line in enumerate(body, start=start + 1):
        if line.strip() and (len(line) - len(line.lstrip(" ")) < indent or "\t" in line[:indent]):
            raise EnvError(f"env line {number} ({name}): less indented than the block")
        content.append(line[indent:])
    text = "\n".join(content) if header["style"] == "|" else _fold(content)
    if header["chomp"] == "-":
        return text, i
    if header["chomp"] == "+":
        return text + "\n" * (1 + kept_blank), i
    return text + "\n", i


def _indent_of(body: list[str]) -> int:
    first = next(line for line in body if line.strip())
    return len(first) - len(first.lstrip(" "))


def _fold(content: list[str]) -> str:
    """YAML folding, simplified: a line break between two lines becomes a space, each blank
    line between them a newline; lines indented more than the block keep their breaks."""
    out, blanks, prev = "", 0, None
    for line in content:
        if not line:
            blanks += 1
            continue
        if prev is not None:
            more = line[0] in " \t" or prev[0] in " \t"
            out += "\n" * (blanks + more) if blanks or more else " "
        else:
            out += "\n" * blanks
        out += line
        prev, blanks = line, 0
    return out
