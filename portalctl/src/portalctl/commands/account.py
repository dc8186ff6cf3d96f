"""login, logout, whoami."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from .. import config
from ..client import Api
from ..errors import ApiError, CliError, Exit
from ..output import fields, print_json, say, table, text, when
from ..state import SESSION
from ._common import JsonOpt, read_line, read_secret

SCOPES = ("read", "write")
EXPIRIES = (7, 30, 90, 365)


def _password_login(api: Api, body: dict[str, Any], otp: str | None) -> dict[str, Any]:
    """POST /auth/token/; asks for the second factor when the account has one."""
    if otp:
        body["otp"] = otp
    try:
        return dict(api.post("auth/token/", body))
    except ApiError as exc:
        if exc.code != "otp_required" or "otp" in body:
            raise
    body["otp"] = read_line("Two-factor code (or a recovery code)").strip()
    return dict(api.post("auth/token/", body))


def _token_identity(api: Api) -> tuple[str, dict[str, Any]]:
    """The username and the token (as the API lists it) that the client sends."""
    me = api.get("me/")
    items = list(api.pages("tokens/"))  # called with a token: that token alone
    return str(me["username"]), items[0] if items else {}


def _revoke_quietly(profile: config.Profile) -> None:
    """The token a new login replaces: revoked, so that none is left behind."""
    if not profile.token or not profile.token_id or not profile.url:
        return
    old = Api(profile.url, profile.token, ca_bundle=profile.ca_bundle)
    try:
        old.delete(f"tokens/{profile.token_id}/")
    except CliError:
        pass
    finally:
        old.close()


def _with_token(profile: config.Profile) -> dict[str, Any]:
    """The token on stdin, checked: the profile gets it and its user; returns the token
    as the API lists it."""
    profile.token = sys.stdin.readline().strip()
    if not profile.token:
        raise CliError("--with-token reads the token from stdin, and stdin was empty", Exit.USAGE)
    api = Api(profile.url, profile.token, ca_bundle=profile.ca_bundle)
    try:
        profile.username, listed = _token_identity(api)
    finally:
        api.close()
    profile.token_id = str(listed.get("id", ""))
    return listed


def _with_password(
    profile: config.Profile, body: dict[str, Any], *, username: str | None, otp: str | None
) -> dict[str, Any]:
    """A new token for a username and password (and 2FA code): the profile gets it."""
    user = username or read_line("Username")
    body.update(username=user, password=read_secret("Password"))
    api = Api(profile.url, ca_bundle=profile.ca_bundle)
    try:
        created = _password_login(api, body, otp)
    finally:
        api.close()
    profile.token, profile.token_id, profile.username = (
        str(created["token"]),
        str(created["id"]),
        user,
    )
    return created


def login(
    url: Annotated[
        str | None, typer.Argument(help="The portal, e.g. https://portal.example.org")
    ] = None,
    username: Annotated[str | None, typer.Option("--username", "-u")] = None,
    otp: Annotated[
        str | None, typer.Option(help="A two-factor code, if you have it at hand already.")
    ] = None,
    with_token: Annotated[
        bool, typer.Option("--with-token", help="Read an API token from stdin instead.")
    ] = False,
    scope: Annotated[str, typer.Option(help="read or write")] = "write",
    expires_in_days: Annotated[int, typer.Option(help="7, 30, 90 or 365")] = 30,
    name: Annotated[str, typer.Option(help="The token's name.")] = "portalctl",
    ca_bundle: Annotated[
        str | None, typer.Option(help="A CA file to trust for the portal's certificate.")
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Log in and keep a token in the profile (username and password, plus a two-factor
    code when the account has one; or --with-token). In a script the answers are read from
    stdin, one per line."""
    if scope not in SCOPES:
        raise CliError("--scope is read or write", Exit.USAGE)
    if expires_in_days not in EXPIRIES:
        raise CliError("--expires-in-days is 7, 30, 90 or 365", Exit.USAGE)
    previous = SESSION.profile
    url = (url or previous.url or read_line("Portal URL")).rstrip("/")
    profile = config.Profile(name=previous.name, url=url, ca_bundle=ca_bundle or previous.ca_bundle)
    if with_token:
        created = _with_token(profile)
    else:
        body = {"name": name, "scope": scope, "expires_in_days": expires_in_days}
        created = _with_password(profile, body, username=username, otp=otp)
    if previous.token != profile.token and previous.url == url and not previous.from_env:
        _revoke_quietly(previous)
    path = config.save(profile)
    if json_:
        print_json({k: v for k, v in created.items() if k != "token"})
        return
    expiry = when(created.get("expires_at")) if created.get("expires_at") else "never"
    say(
        f"Logged in to {url} as {profile.username} "
        f"(token {text(created.get('prefix'))}, {created.get('scope', '?')}, expires {expiry}); "
        f"profile '{profile.name}' in {path}"
    )
    if previous.from_env:
        say("note: PORTAL_URL / PORTAL_TOKEN are set and win over the profile")


def logout(json_: JsonOpt = False) -> None:
    """Revoke the token (the profile's, or PORTAL_TOKEN's) and forget it."""
    profile = SESSION.profile
    if not profile.token:
        raise CliError(f"profile '{profile.name}' is not logged in", Exit.AUTH)
    api = SESSION.api()
    revoked: dict[str, Any] | None = None
    try:
        token_id = profile.token_id or _token_identity(api)[1].get("id")
        revoked = api.delete(f"tokens/{token_id}/")
    except ApiError as exc:
        if exc.status != 401:
            raise
        say("the token was no longer valid")
    if not profile.from_env:
        config.remove_secret(profile.name)
    if json_:
        print_json(revoked)
        return
    say(f"Logged out of {profile.url} (profile '{profile.name}')")


def whoami(json_: JsonOpt = False) -> None:
    """Your user, groups, quota and what you use of it."""
    me = SESSION.me()
    if json_:
        print_json(me)
        return
    profile = SESSION.profile
    where = "the environment" if profile.from_env else f"profile '{profile.name}'"
    fields(
        [
            ("user", f"{me.get('username')} ({me.get('full_name') or '-'})"),
            ("email", me.get("email")),
            ("staff", me.get("is_staff")),
            ("groups", me.get("groups")),
            ("two-factor", me.get("otp_enrolled")),
            ("SSH keys", len(me.get("ssh_keys") or [])),
            ("portal", f"{profile.url} (from {where})"),
        ]
    )
    quota: dict[str, Any] = me.get("quota") or {}
    if quota.get("exempt"):
        say("quota: exempt (staff)")
        return
    usage, remaining = quota.get("usage", {}), quota.get("remaining", {})
    rows = [
        {
            "limit": name,
            "value": limit.get("value") if limit.get("value") is not None else "no limit",
            "used": usage.get(name.removeprefix("max_").removeprefix("container_")),
            "left": remaining.get(name),
            "source": limit.get("source"),
        }
        for name, limit in (quota.get("limits") or {}).items()
    ]
    table(
        rows,
        [
            ("LIMIT", "limit"),
            ("VALUE", "value"),
            ("USED", _used),
            ("LEFT", "left"),
            ("FROM", "source"),
        ],
        empty="no quota limits",
    )


def _used(row: dict[str, Any]) -> Any:
    # Per-container limits bound each container, not a total: no usage figure applies.
    return "-" if row["limit"].startswith("max_container_") else row["used"]
