"""ssh NAME [-- CMD]: the system's ssh, to the container's SSH port on the gateway."""

from __future__ import annotations

import os
import shlex
import shutil
from typing import Annotated

import typer

from ..errors import CliError, Exit
from ..output import result
from ..resolve import container, container_path, ssh_login, ssh_port
from ..state import SESSION
from ._common import NameArg


def ssh(
    name: NameArg,
    command: Annotated[
        list[str] | None, typer.Argument(metavar="[-- CMD...]", help="A command to run there.")
    ] = None,
    host: Annotated[
        str | None,
        typer.Option(help="Connect to this host instead of the container's name (e.g. 127.0.0.1)."),
    ] = None,
    user: Annotated[str | None, typer.Option("--user", "-l", help="Log in as this user.")] = None,
    identity: Annotated[
        str | None, typer.Option("--identity", "-i", help="The private key file for ssh.")
    ] = None,
    print_only: Annotated[
        bool, typer.Option("--print", help="Print the ssh command instead of running it.")
    ] = False,
) -> None:
    """Open SSH to a container through the gateway's port for it, as yourself (owners and
    collaborators log in as themselves; staff on another's container as its owner)."""
    api = SESSION.api()
    c = container(api, name)
    port = ssh_port(api.get(container_path(c, "ports/")))
    if port is None:
        raise CliError(f"{c['hostname']} has no SSH port yet (status {c.get('status')})")
    login = user or ssh_login(c, SESSION.me())
    argv = ["ssh", "-p", str(port)]
    if identity:
        argv += ["-i", identity]
    argv += [f"{login}@{host or c['fqdn']}", *(command or [])]
    if print_only:
        result(shlex.join(argv))
        return
    binary = shutil.which("ssh")
    if binary is None:
        raise CliError("ssh is not installed (openssh-client)", Exit.ERROR)
    SESSION.close()
    os.execv(binary, argv)  # noqa: S606 - ssh replaces portalctl, as `exec ssh` would
