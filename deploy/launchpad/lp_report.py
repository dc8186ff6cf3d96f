"""What the action says: workflow commands (errors, notices, masks), step outputs, the job
summary, and the pull request comment's text. Pure functions and file appends only."""

from __future__ import annotations

import re
import sys
import uuid
from dataclasses import dataclass
from typing import Any, TextIO

# A value shorter than this is not masked: masking "1" would star every 1 in the log, and
# a value that short is no secret.
MASK_MIN = 3
DEPLOYING, LIVE, FAILED, REMOVED, SUPERSEDED = (
    "deploying",
    "live",
    "failed",
    "removed",
    "superseded",
)


# -- workflow commands


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def workflow_command(name: str, message: str, out: TextIO | None = None, **props: str) -> None:
    stream = out or sys.stdout
    args = ",".join(f"{k}={escape_property(v)}" for k, v in props.items() if v)
    stream.write(f"::{name}{' ' + args if args else ''}::{escape_data(message)}\n")
    stream.flush()


def error(message: str) -> None:
    workflow_command("error", message, title="LaunchPad")


def warning(message: str) -> None:
    workflow_command("warning", message, title="LaunchPad")


def notice(message: str) -> None:
    workflow_command("notice", message, title="LaunchPad")


def mask(value: str) -> None:
    """Register a secret with the runner, which then stars it in every log line. Each line
    of a multi-line value on its own: the runner matches within a line."""
    parts = [value, *value.splitlines()] if "\n" in value or "\r" in value else [value]
    for part in dict.fromkeys(p.strip() for p in parts):
        if len(part) >= MASK_MIN and "\n" not in part and "\r" not in part:
            workflow_command("add-mask", part)


# -- step outputs and the job summary


def write_outputs(path: str, values: dict[str, str]) -> None:
    """`name<<DELIMITER` blocks: a value can never end the block early or add an output."""
    if not path:
        return
    with open(path, "a", encoding="utf-8") as f:
        for name, value in values.items():
            delimiter = f"ghadelimiter_{uuid.uuid4().hex}"
            f.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")


def append_summary(path: str, markdown: str) -> None:
    if not path:
        return
    with open(path, "a", encoding="utf-8") as f:
        f.write(markdown.rstrip("\n") + "\n")


# -- what is said on GitHub


@dataclass
class Outcome:
    """A run's result, as the summary and the comment show it."""

    state: str  # DEPLOYING, LIVE, FAILED, REMOVED or SUPERSEDED
    ref: str
    commit: str = ""
    name: str = ""
    url: str = ""
    ssh: str = ""
    message: str = ""  # the portal's, on a failure
    serving_commit: str = ""
    expires_at: str = ""
    log_url: str = ""

    @classmethod
    def from_deployment(
        cls, state: str, ref: str, commit: str, body: dict[str, Any] | None, **more: str
    ) -> Outcome:
        body = body or {}
        return cls(
            state=state,
            ref=ref,
            commit=commit,
            name=str(body.get("name") or ""),
            url=str(body.get("url") or ""),
            ssh=str(body.get("ssh") or ""),
            serving_commit=str(body.get("serving_commit") or ""),
            expires_at=str(body.get("expires_at") or ""),
            **more,
        )


def short(commit: str) -> str:
    return commit[:7]


def _code(text: str) -> str:
    """Inline code that a backtick in the text cannot end."""
    fence = "``" if "`" in text else "`"
    return f"{fence} {text} {fence}" if fence == "``" else f"`{text}`"


def _headline(o: Outcome) -> str:
    if o.state == DEPLOYING:
        return f"⏳ Deploying `{short(o.commit)}`…"
    if o.state == LIVE:
        return f"✅ `{short(o.commit)}` is live"
    if o.state == SUPERSEDED:
        return f"↪️ `{short(o.commit)}` was not deployed: a newer commit is"
    if o.state == REMOVED:
        return "🗑️ The preview was removed"
    return f"❌ The deploy of `{short(o.commit)}` failed"


def _when(stamp: str) -> str:
    """The API's UTC timestamp to the minute: 2026-03-09 10:00 UTC."""
    if re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d.*(Z|\+00:00)", stamp):
        return f"{stamp[:10]} {stamp[11:16]} UTC"
    return stamp


def _rows(o: Outcome) -> list[tuple[str, str]]:
    rows = []
    if o.url and o.state != REMOVED:
        rows.append(("URL", o.url))
    if o.ssh and o.state != REMOVED:
        rows.append(("SSH", _code(o.ssh)))
    if o.name:
        rows.append(("Container", _code(o.name)))
    if o.serving_commit and o.state in (FAILED, SUPERSEDED) and o.serving_commit != o.commit:
        rows.append(("Still serving", _code(short(o.serving_commit))))
    if o.expires_at and o.state != REMOVED:
        rows.append(("Expires", _when(o.expires_at)))
    return rows


def render(o: Outcome) -> str:
    """Markdown for the job summary and the pull request comment (after its marker)."""
    lines = [f"### LaunchPad: {_headline(o)}", ""]
    if o.message:
        # The portal's message, quoted line by line: it may span lines.
        lines += [*(f"> {line}" for line in o.message.splitlines()), ""]
    rows = _rows(o)
    if rows:
        lines += ["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows), ""]
    if o.log_url:
        lines.append(f"[The workflow run]({o.log_url})")
    return "\n".join(lines).rstrip("\n") + "\n"


def comment_marker(ref: str) -> str:
    """The hidden first line by which the action finds its own comment again."""
    return f"<!-- cluster-portal-launchpad {ref} -->"


def comment_body(o: Outcome) -> str:
    return f"{comment_marker(o.ref)}\n{render(o)}"
