"""A container named the way a person would: its hostname, its VMID, or `site/hostname`
when two sites have the name."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import CliError, Exit

if TYPE_CHECKING:
    from .client import Api


def find_container(api: Api, ref: str) -> dict[str, Any] | None:
    """The container `ref` names, or None. Hostnames are never all digits, so digits are
    a VMID."""
    ref = ref.strip()
    site, _, name = ref.rpartition("/")
    if not name:
        raise CliError(f"'{ref}' is not a container's name or VMID", Exit.USAGE)
    params: dict[str, Any] = {"site": site or None}
    if name.isdigit():
        matches = list(api.pages("containers/", vmid=int(name), **params))
        matches = [c for c in matches if int(c.get("vmid") or 0) == int(name)]
    else:
        wanted = name.lower()
        matches = [
            c
            for c in api.pages("containers/", hostname=wanted, **params)
            if str(c.get("hostname", "")).lower() == wanted
        ]
    if len(matches) > 1:
        sites = ", ".join(f"{c.get('site')}/{c.get('hostname')}" for c in matches)
        raise CliError(f"'{ref}' names {len(matches)} containers: say which ({sites})")
    return matches[0] if matches else None


def container(api: Api, ref: str) -> dict[str, Any]:
    found = find_container(api, ref)
    if found is None:
        raise CliError(f"no container '{ref}' (or it is not yours)", Exit.NOT_FOUND)
    return found


def container_path(c: dict[str, Any], tail: str = "") -> str:
    return f"containers/{c['id']}/{tail}"


def ssh_port(ports: list[dict[str, Any]]) -> int | None:
    """The gateway's port of the container's SSH mapping."""
    found = next((p for p in ports if p.get("name") == "ssh" and p.get("protocol") == "tcp"), None)
    return int(found["external_port"]) if found else None


def ssh_login(c: dict[str, Any], me: dict[str, Any]) -> str:
    """Owners and collaborators log in as themselves; staff on another's container as its owner."""
    if me.get("is_staff") and c.get("owner") != me.get("username"):
        return str(c.get("owner"))
    return str(me.get("username") or c.get("owner"))
