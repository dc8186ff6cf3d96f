"""keys list|add|remove: the SSH public keys of your profile (offered when creating a
container with --ssh-key-from-profile, and kept in the directory where it has them)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import CliError, Exit
from ..output import listing, print_json, say, when
from ..state import SESSION
from ._common import JsonOpt

app = typer.Typer(no_args_is_help=True, help="The SSH keys of your profile.")


@app.command("list")
def list_(json_: JsonOpt = False) -> None:
    """Your SSH keys."""
    rows = list(SESSION.api().pages("ssh-keys/"))
    listing(
        json_,
        rows,
        [
            ("ID", "id"),
            ("NAME", "name"),
            ("FINGERPRINT", lambda k: f"SHA256:{k.get('fingerprint')}"),
            ("TYPE", lambda k: str(k.get("key", "")).split(" ", 1)[0]),
            ("ADDED", lambda k: when(k.get("created_at"))),
        ],
        empty="no SSH keys",
    )


@app.command()
def add(
    file: Annotated[
        Path, typer.Argument(metavar="FILE", help="A public key file (~/.ssh/id_ed25519.pub), or -")
    ],
    name: Annotated[str | None, typer.Option(help="A name (default: the key's comment).")] = None,
    json_: JsonOpt = False,
) -> None:
    """Add a public key to your profile."""
    if str(file) == "-":
        key = sys.stdin.read()
    else:
        try:
            key = file.expanduser().read_text(encoding="utf-8")
        except OSError as exc:
            raise CliError(f"cannot read {file}: {exc.strerror}", Exit.USAGE) from exc
    body = {"key": key.strip(), **({"name": name} if name else {})}
    row = SESSION.api().post("ssh-keys/", body)
    if json_:
        print_json(row)
        return
    say(f"Added SSH key SHA256:{row['fingerprint']} ({row.get('name') or 'no name'})")


@app.command()
def remove(
    key: Annotated[str, typer.Argument(metavar="KEY", help="Its id, name or SHA256 fingerprint.")],
    json_: JsonOpt = False,
) -> None:
    """Remove a key from your profile."""
    api = SESSION.api()
    wanted = key.removeprefix("SHA256:")
    rows: list[dict[str, Any]] = list(api.pages("ssh-keys/"))
    found = [
        k
        for k in rows
        if (wanted.isdigit() and str(k.get("id")) == wanted)
        or wanted in (k.get("name"), k.get("fingerprint"))
    ]
    if not found:
        raise CliError(f"no SSH key '{key}' (see: portalctl keys list)", Exit.NOT_FOUND)
    if len(found) > 1:
        raise CliError(f"{len(found)} SSH keys are called '{key}': give its id or fingerprint")
    api.delete(f"ssh-keys/{found[0]['id']}/")
    if json_:
        print_json(found[0])
        return
    say(f"Removed SSH key SHA256:{found[0]['fingerprint']}")
