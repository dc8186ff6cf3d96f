"""tokens list|create|revoke.

A token sees and revokes only itself (the API's rule: tokens are managed from a signed-in
session), so `tokens create` signs in with your password, as `login` does."""

from __future__ import annotations

from typing import Annotated

import typer

from .. import config
from ..client import Api
from ..errors import ApiError, CliError, Exit
from ..output import listing, print_json, result, say, when
from ..state import SESSION
from ._common import JsonOpt, read_line, read_secret
from .account import EXPIRIES, SCOPES, _password_login

app = typer.Typer(no_args_is_help=True, help="Your API tokens.")


@app.command("list")
def list_(json_: JsonOpt = False) -> None:
    """Your tokens (called with a token, the API shows only that token)."""
    rows = list(SESSION.api().pages("tokens/"))
    listing(
        json_,
        rows,
        [
            ("ID", "id"),
            ("NAME", "name"),
            ("PREFIX", "prefix"),
            ("SCOPE", "scope"),
            ("CREATED", lambda t: when(t.get("created_at"))),
            ("EXPIRES", lambda t: when(t.get("expires_at")) if t.get("expires_at") else "never"),
            ("LAST USED", lambda t: when(t.get("last_used_at"))),
            ("ACTIVE", "active"),
        ],
        empty="no tokens",
    )


@app.command()
def create(
    name: Annotated[str, typer.Option(help="What the token is for, e.g. ci-deploy.")],
    scope: Annotated[str, typer.Option(help="read or write.")] = "read",
    expires_in_days: Annotated[int, typer.Option(help="7, 30, 90 or 365.")] = 90,
    username: Annotated[str | None, typer.Option("--username", "-u")] = None,
    otp: Annotated[str | None, typer.Option(help="A two-factor code.")] = None,
    json_: JsonOpt = False,
) -> None:
    """Make a token for a script or CI (asks for your password; prints the token once)."""
    if scope not in SCOPES or expires_in_days not in EXPIRIES:
        raise CliError("--scope is read or write; --expires-in-days 7, 30, 90 or 365", Exit.USAGE)
    profile = SESSION.profile
    url = profile.url or read_line("Portal URL")
    user = username or profile.username or read_line("Username")
    api = Api(url, ca_bundle=profile.ca_bundle)
    body = {
        "username": user,
        "password": read_secret("Password"),
        "name": name,
        "scope": scope,
        "expires_in_days": expires_in_days,
    }
    try:
        created = _password_login(api, body, otp)
    finally:
        api.close()
    if json_:
        print_json(created)
        return
    say(
        f"Token '{created['name']}' ({created['scope']}, expires "
        f"{when(created.get('expires_at'))}): shown this once, keep it now"
    )
    result(str(created["token"]))


@app.command()
def revoke(
    token_id: Annotated[str, typer.Argument(metavar="ID", help="The token's id (tokens list).")],
    json_: JsonOpt = False,
) -> None:
    """Revoke a token (with a token, only that token itself: use logout)."""
    try:
        revoked = SESSION.api().delete(f"tokens/{token_id}/")
    except ApiError as exc:
        if exc.code == "token_needs_session":
            exc.details.append(
                "revoke another token on the profile page, or with that token itself: "
                "PORTAL_TOKEN=<it> portalctl logout"
            )
        raise
    profile = SESSION.profile
    if str(profile.token_id) == str(token_id) and not profile.from_env:
        config.remove_secret(profile.name)
    if json_:
        print_json(revoked)
        return
    say(f"Revoked token {revoked.get('name')} ({revoked.get('prefix')})")
