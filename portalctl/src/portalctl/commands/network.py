"""routes list|add|set-access|remove and ports list|add|remove: what the gateway publishes
for a container (changes reach the gateway on its next apply, within seconds)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ..client import Api
from ..errors import CliError, Exit
from ..output import Column, listing, print_json, say
from ..resolve import container, container_path
from ..state import SESSION
from ._common import JsonOpt, NameArg

routes = typer.Typer(no_args_is_help=True, help="A container's web addresses (HTTP routes).")
ports = typer.Typer(no_args_is_help=True, help="A container's published TCP/UDP ports.")

ACCESS = ("users", "owner", "public")
ROUTE_COLUMNS: list[Column] = [
    ("ID", "id"),
    ("NAME", lambda r: r.get("name") or "(default)"),
    ("URL", "url"),
    ("PORT", "backend_port"),
    ("PROTOCOL", "protocol"),
    ("ACCESS", "access"),
    ("ENABLED", "enabled"),
]
PORT_COLUMNS: list[Column] = [
    ("ID", "id"),
    ("NAME", "name"),
    ("PROTOCOL", "protocol"),
    ("GATEWAY PORT", "external_port"),
    ("CONTAINER PORT", "container_port"),
]


def _pick(
    items: list[dict[str, Any]], ref: str, what: str, keys: tuple[str, ...]
) -> dict[str, Any]:
    """An item by its id (digits) or one of its names."""
    for item in items:
        if (ref.isdigit() and str(item.get("id")) == ref) or any(
            str(item.get(k) or "") == ref for k in keys
        ):
            return item
    known = ", ".join(str(i.get(keys[0]) or i.get("id")) for i in items) or "none"
    raise CliError(f"no {what} '{ref}' (there are: {known})", Exit.NOT_FOUND)


def _route(api: Api, c: dict[str, Any], ref: str) -> dict[str, Any]:
    items = api.get(container_path(c, "routes/"))
    if ref in ("default", "(default)"):
        ref = str(c["hostname"])  # the default route's subdomain is the hostname
    return _pick(items, ref, "route", ("name", "subdomain"))


# -- routes ----------------------------------------------------------------------------------
@routes.command("list")
def routes_list(name: NameArg, json_: JsonOpt = False) -> None:
    """The container's routes: its own name and its services at <service>-<hostname>."""
    api = SESSION.api()
    items = api.get(container_path(container(api, name), "routes/"))
    listing(json_, items, ROUTE_COLUMNS, empty="no routes")


@routes.command("add")
def routes_add(
    name: NameArg,
    service: Annotated[
        str, typer.Argument(help="The service's name: served at <service>-<hostname>.")
    ],
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="The container's port.")],
    protocol: Annotated[str, typer.Option(help="http or https (to the container).")] = "http",
    access: Annotated[str, typer.Option(help="users, owner or public.")] = "users",
    json_: JsonOpt = False,
) -> None:
    """Publish an HTTP service of the container."""
    api = SESSION.api()
    c = container(api, name)
    body = {"name": service, "backend_port": port, "protocol": protocol, "access": access}
    route = api.post(container_path(c, "routes/"), body)
    if json_:
        print_json(route)
        return
    say(f"Added {route['url']} -> port {route['backend_port']} ({route['access']})")


@routes.command("set-access")
def routes_set_access(
    name: NameArg,
    route: Annotated[str, typer.Argument(help="The route: its id, service name, or 'default'.")],
    access: Annotated[str, typer.Argument(help="users, owner or public.")],
    json_: JsonOpt = False,
) -> None:
    """Who may open a route: signed-in users, the owner (and collaborators), or anyone."""
    if access not in ACCESS:
        raise CliError(f"access is one of {', '.join(ACCESS)}", Exit.USAGE)
    api = SESSION.api()
    c = container(api, name)
    found = _route(api, c, route)
    updated = api.patch(container_path(c, f"routes/{found['id']}/"), {"access": access})
    if json_:
        print_json(updated)
        return
    say(f"{updated['url']} is now open to: {updated['access']}")


@routes.command("remove")
def routes_remove(
    name: NameArg,
    route: Annotated[str, typer.Argument(help="The route: its id or service name.")],
    json_: JsonOpt = False,
) -> None:
    """Remove a service's route (the default one can only be disabled)."""
    api = SESSION.api()
    c = container(api, name)
    found = _route(api, c, route)
    api.delete(container_path(c, f"routes/{found['id']}/"))
    if json_:
        print_json(found)
        return
    say(f"Removed {found['url']}")


# -- ports -----------------------------------------------------------------------------------
@ports.command("list")
def ports_list(name: NameArg, json_: JsonOpt = False) -> None:
    """The container's ports on the gateway (SSH, and any published)."""
    api = SESSION.api()
    items = api.get(container_path(container(api, name), "ports/"))
    listing(json_, items, PORT_COLUMNS, empty="no ports")


@ports.command("add")
def ports_add(
    name: NameArg,
    service: Annotated[str, typer.Argument(help="A name for the port, e.g. postgres.")],
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="The container's port.")],
    protocol: Annotated[str, typer.Option(help="tcp or udp.")] = "tcp",
    json_: JsonOpt = False,
) -> None:
    """Publish a TCP or UDP port of the container on the gateway."""
    api = SESSION.api()
    c = container(api, name)
    body = {"name": service, "container_port": port, "protocol": protocol}
    mapping = api.post(container_path(c, "ports/"), body)
    if json_:
        print_json(mapping)
        return
    say(
        f"Published {c['hostname']}:{mapping['container_port']}/{mapping['protocol']} "
        f"on the gateway's port {mapping['external_port']}"
    )


@ports.command("remove")
def ports_remove(
    name: NameArg,
    port: Annotated[str, typer.Argument(help="The port: its id or name.")],
    json_: JsonOpt = False,
) -> None:
    """Unpublish a port (not the SSH port)."""
    api = SESSION.api()
    c = container(api, name)
    found = _pick(api.get(container_path(c, "ports/")), port, "port", ("name",))
    api.delete(container_path(c, f"ports/{found['id']}/"))
    if json_:
        print_json(found)
        return
    say(f"Unpublished the gateway's port {found['external_port']} ({found['name']})")
