"""alerts: the noisy-neighbour alerts of your containers (staff: everyone's)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ..errors import CliError, Exit
from ..output import Column, listing, when
from ..resolve import container
from ..state import SESSION
from ._common import JsonOpt

STATES = ("open", "cleared", "all")
KINDS = ("memory", "cpu")


def figure(alert: dict[str, Any]) -> str:
    """The last figure checked, as a share: memory used of its limit, CPU of its cores."""
    value = alert.get("value")
    return "-" if value is None else f"{float(value) * 100:.0f}%"


def alert_line(alert: dict[str, Any]) -> str:
    """One open alert as `containers show` prints it: since when its condition holds."""
    message = alert.get("message") or figure(alert)
    return f"{alert.get('kind')} since {when(alert.get('since'))}: {message}"


def alerts_text(alerts: list[dict[str, Any]] | None) -> str:
    """A container's open alerts on one line ('none' without any)."""
    return "; ".join(alert_line(a) for a in alerts or []) or "none"


COLUMNS: list[Column] = [
    ("CONTAINER", "hostname"),
    ("SITE", "site"),
    ("NODE", "node"),
    ("KIND", "kind"),
    ("STATE", "state"),
    ("VALUE", figure),
    ("RAISED", lambda a: when(a.get("raised_at"))),
    ("CLEARED", lambda a: when(a.get("cleared_at"))),
    ("MESSAGE", "message"),
]


def alerts(
    state: Annotated[
        str, typer.Option("--state", "-s", help="open (the default), cleared, or all.")
    ] = "open",
    container_name: Annotated[
        str | None, typer.Option("--container", "-c", help="One container's alerts.")
    ] = None,
    kind: Annotated[str | None, typer.Option(help="memory or cpu.")] = None,
    site: Annotated[str | None, typer.Option(help="A site's slug.")] = None,
    json_: JsonOpt = False,
) -> None:
    """Noisy-neighbour alerts of your containers, newest first (staff: everyone's):
    memory near its limit under pressure, or CPU pinned at its cores, for
    ALERT_FOR_MINUTES or more. Open ones unless --state says otherwise."""
    if state not in STATES:
        raise CliError(f"--state is open, cleared or all (got {state!r})", Exit.USAGE)
    if kind is not None and kind not in KINDS:
        raise CliError(f"--kind is memory or cpu (got {kind!r})", Exit.USAGE)
    api = SESSION.api()
    cid = container(api, container_name)["id"] if container_name else None
    rows = list(api.pages("alerts/", state=state, container=cid, kind=kind, site=site))
    listing(json_, rows, COLUMNS, empty="no open alerts" if state == "open" else "no alerts")
