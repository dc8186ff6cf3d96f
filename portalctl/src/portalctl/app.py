"""The `portalctl` command: global options, the command groups (each module is imported
only when its command runs, so `portalctl --version` starts fast), and the exit codes."""

from __future__ import annotations

import importlib
import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from . import __version__
from .errors import CliError
from .state import SESSION

# name -> (module, attribute, help): a Typer (a group) or a function (one command).
COMMANDS: dict[str, tuple[str, str, str]] = {
    "login": ("account", "login", "Log in to a portal and keep a token in the profile."),
    "logout": ("account", "logout", "Revoke the profile's token and forget it."),
    "whoami": ("account", "whoami", "Who you are: your user, quota and usage."),
    "containers": ("containers", "app", "Create, list, change and delete containers."),
    "jobs": ("jobs", "app", "A job's steps and its log (live with -f)."),
    "alerts": ("alerts", "alerts", "Noisy-neighbour alerts of your containers (open ones)."),
    "deploy": ("deploy", "deploy", "Deploy a commit of a git checkout into its own container."),
    "deployments": ("deployments", "app", "Deployments: list, show, destroy, extend, logs."),
    "routes": ("network", "routes", "A container's web addresses (HTTP routes)."),
    "ports": ("network", "ports", "A container's published TCP/UDP ports."),
    "collaborators": ("collaborators", "app", "Who else may use a container."),
    "ssh": ("ssh", "ssh", "Open SSH to a container through the gateway."),
    "tokens": ("tokens", "app", "Your API tokens."),
    "keys": ("keys", "app", "The SSH keys of your profile."),
    "requests": ("requests", "app", "Ask for more quota or a bigger container."),
    "templates": ("catalog", "templates", "The templates containers are made from."),
    "nodes": ("catalog", "nodes", "The hypervisors (staff)."),
}


class LazyGroup(TyperGroup):
    """Builds a command from its module the first time it is asked for."""

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module = importlib.import_module(f"portalctl.commands.{entry[0]}")
        target = getattr(module, entry[1])
        if isinstance(target, typer.Typer):
            command = typer.main.get_command(target)
        else:
            single = typer.Typer()
            single.command(name=cmd_name, help=entry[2])(target)
            command = typer.main.get_command(single)
        command.name = cmd_name
        if not command.help:
            command.help = entry[2]
        return command


app = typer.Typer(
    cls=LazyGroup,
    no_args_is_help=True,
    help="Cluster Portal from the command line: LXC containers on Proxmox VE.\n\n"
    "Configuration: PORTAL_URL and PORTAL_TOKEN in the environment win over the profile "
    "that `portalctl login` writes. Every command takes --json for scripts. "
    "Exit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 not authenticated or forbidden, "
    "5 conflict, 6 the job failed.",
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"portalctl {__version__}\n")
        raise typer.Exit()


@app.callback()
def root(
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            "-p",
            envvar="PORTALCTL_PROFILE",
            help="The profile of the config file to use (default: 'default').",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    SESSION.profile_name = profile


def main() -> None:
    """The console script. Click reports usage errors itself (exit 2); the errors of
    portalctl are printed here, on stderr, with their exit codes."""
    from .output import error

    try:
        app(prog_name="portalctl")
    except CliError as exc:
        error(exc.message, exc.details)
        sys.exit(int(exc.exit_code))
    finally:
        SESSION.close()
