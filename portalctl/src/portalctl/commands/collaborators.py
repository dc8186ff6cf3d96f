"""collaborators list|add|remove: who else may use a container (each change runs an
access job: the directory group and the Proxmox grants)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

import typer

from ..output import print_json, result
from ..resolve import container, container_path
from ..state import SESSION
from ._common import JsonOpt, NameArg, WaitOpt
from .containers import finish

app = typer.Typer(no_args_is_help=True, help="Who else may use a container.")
UserArg = Annotated[str, typer.Argument(metavar="USERNAME")]


@app.command("list")
def list_(name: NameArg, json_: JsonOpt = False) -> None:
    """The container's collaborators."""
    api = SESSION.api()
    body = api.get(container_path(container(api, name), "collaborators/"))
    if json_:
        print_json(body)
        return
    for username in body.get("collaborators", []):
        result(username)


@app.command()
def add(name: NameArg, username: UserArg, wait: WaitOpt = False, json_: JsonOpt = False) -> None:
    """Let another user in (SSH as themselves, the web address, the Proxmox view)."""
    api = SESSION.api()
    c = container(api, name)
    accepted = api.post(container_path(c, "collaborators/"), {"username": username})
    done = f"{username} may use {c['hostname']} now"
    finish(accepted, wait=wait, json_=json_, verb=f"Adding {username} to", done=done)


@app.command()
def remove(name: NameArg, username: UserArg, wait: WaitOpt = False, json_: JsonOpt = False) -> None:
    """Take a collaborator's access away."""
    api = SESSION.api()
    c = container(api, name)
    accepted = api.delete(container_path(c, f"collaborators/{quote(username, safe='')}/"))
    done = f"{username} no longer has access to {c['hostname']}"
    finish(accepted, wait=wait, json_=json_, verb=f"Removing {username} from", done=done)
