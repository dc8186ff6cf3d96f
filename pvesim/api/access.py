"""/access: tickets, ACLs, realms and their sync, users."""

from __future__ import annotations

import hmac
from typing import Any

from pvesim import apidefs
from pvesim.access import (
    ROLES,
    AclEntry,
    User,
    check_acl_path,
    normalize_acl_path,
    permissions,
    split_tokenid,
)
from pvesim.errors import ApiError, die, param_error
from pvesim.router import Ctx, route
from pvesim.schema import split_list
from pvesim.tasks import Worker, WorkerContext

_CAP_AREAS = {
    "vms": ("/vms", ("VM.",)),
    "storage": ("/storage", ("Datastore.",)),
    "access": ("/access", ("User.", "Group.", "Permissions.", "Realm.")),
    "nodes": ("/nodes", ("Sys.",)),
    "dc": ("/", ("Sys.Audit", "Sys.Modify", "SDN.", "Realm.")),
    "sdn": ("/sdn", ("SDN.",)),
    "mapping": ("/mapping", ("Mapping.",)),
}


def _cap(ctx: Ctx, userid: str) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for area, (path, prefixes) in _CAP_AREAS.items():
        privs = permissions(ctx.state.access, userid, path)
        out[area] = {p: 1 for p in sorted(privs) if p.startswith(prefixes)}
    return out


@route("POST", "/access/ticket", params=apidefs.TICKET, allowtoken=False)
def create_ticket(ctx: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    state = ctx.state
    username = p["username"]
    if p.get("realm"):
        username += f"@{p['realm']}"
    now = state.now()
    try:
        user = state.access.users.get(username)
        if user is None or not user.enable or (user.expire and user.expire < now):
            raise die("user account disabled or does not exist")
        password = p["password"]
        renewed = (
            state.tickets.verify_ticket(password, now) if password.startswith("PVE:") else None
        )
        if renewed is not None and renewed[0] in ("root@pam", username):
            pass  # a valid ticket renews itself (root@pam may create tickets for others)
        elif (
            user.password is None
            or state.access.realms.get(user.realm) is None
            or not hmac.compare_digest(user.password.encode(), password.encode())
        ):
            raise die("invalid credentials")
        if p.get("path") and p.get("privs"):
            path = normalize_acl_path(p["path"])
            privs = split_list(p["privs"])
            if not (
                path
                and privs
                and all(x in permissions(state.access, username, path) for x in privs)
            ):
                raise die(f"no permission ({p['path']}, {p['privs']})")
            return {"username": username}
    except ApiError as exc:
        # do not return any info to prevent user enumeration attacks
        raise ApiError(401, "authentication failure\n") from exc
    res: dict[str, Any] = {
        "username": username,
        "ticket": state.tickets.create_ticket(username, now),
        "CSRFPreventionToken": state.tickets.create_csrf(username, now),
        "cap": _cap(ctx, username),
    }
    if "Sys.Audit" in permissions(state.access, username, "/"):
        res["clustername"] = state.config.cluster_name
    return res


@route("GET", "/access/ticket", params=apidefs.NO_PARAMS)
def get_ticket(ctx: Ctx, p: dict[str, Any]) -> None:
    return None


@route("GET", "/access/acl", params=apidefs.NO_PARAMS)
def read_acl(ctx: Ctx, p: dict[str, Any]) -> list[dict[str, Any]]:
    audit = ctx.check("/access", ["Sys.Audit"], noerr=True)
    out = []
    for entry in ctx.state.access.acl:
        if not (audit or ctx.check_perm_modify(entry.path, noerr=True)):
            continue
        out.append(
            {
                "path": entry.path,
                "type": entry.type,
                "ugid": entry.ugid,
                "roleid": entry.roleid,
                "propagate": entry.propagate,
            }
        )
    return sorted(out, key=lambda e: (e["path"], e["type"], e["ugid"], e["roleid"]))


def _acl_perm(ctx: Ctx, raw: dict[str, Any]) -> None:
    path = normalize_acl_path(str(raw.get("path", ""))) or str(raw.get("path", ""))
    ctx.check_perm_modify(path)


@route("PUT", "/access/acl", params=apidefs.ACL_UPDATE, pre_check=_acl_perm)
def update_acl(ctx: Ctx, p: dict[str, Any]) -> None:
    state = ctx.state
    acc = state.access
    if not (p.get("users") or p.get("groups") or p.get("tokens")):
        msg = "either 'users', 'groups' or 'tokens' is required."
        raise param_error({"users": msg, "groups": msg, "tokens": msg})
    path = normalize_acl_path(p["path"])
    if not path or (not p.get("delete") and not check_acl_path(path)):
        raise param_error({"path": f"invalid ACL path '{p['path']}'"})
    if not state.faults.quorum:
        raise die("ACL update failed: cfs-lock 'file-user_cfg' error: no quorum!")
    propagate = 1 if p.get("propagate", 1) else 0
    delete = bool(p.get("delete"))

    def fail(msg: str) -> ApiError:
        # lock_user_config(..., "ACL update failed") prefixes every error.
        return die(f"ACL update failed: {msg}")

    new_acl = list(acc.acl)

    def put(kind: str, ugid: str, role: str) -> None:
        nonlocal new_acl
        new_acl = [
            a
            for a in new_acl
            if not (a.path == path and a.type == kind and a.ugid == ugid and a.roleid == role)
        ]
        if not delete:
            new_acl.append(AclEntry(path, kind, ugid, role, propagate))

    for role in split_list(p["roles"]):
        if role not in ROLES:
            raise fail(f"role '{role}' does not exist")
        for group in split_list(p.get("groups") or ""):
            if group not in acc.groups:
                raise fail(f"group '{group}' does not exist")
            put("group", group, role)
        for userid in split_list(p.get("users") or ""):
            if userid not in acc.users:
                raise fail(f"user '{userid}' does not exist")
            put("user", userid, role)
        for tokenid in split_list(p.get("tokens") or ""):
            parts = split_tokenid(tokenid)
            assert parts is not None  # the format check already passed
            owner = acc.users.get(parts[0])
            if owner is None:
                raise fail(f"no such user ('{parts[0]}')")
            if parts[1] not in owner.tokens:
                raise fail(f"no such token '{parts[1]}' for user '{parts[0]}'")
            put("token", tokenid, role)
    acc.acl = new_acl
    state.mark_dirty()
    return None


@route("GET", "/access/domains", params=apidefs.NO_PARAMS)
def domains(ctx: Ctx, p: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for realm in sorted(ctx.state.access.realms.values(), key=lambda r: r.realm):
        entry: dict[str, Any] = {"realm": realm.realm, "type": realm.type}
        if realm.comment:
            entry["comment"] = realm.comment
        out.append(entry)
    return out


def _sync_perm(ctx: Ctx, raw: dict[str, Any]) -> None:
    ctx.check(f"/access/realm/{raw.get('realm', '')}", ["Realm.AllocateUser"])
    ctx.check("/access/groups", ["User.Modify"])


@route("POST", "/access/domains/{realm}/sync", params=apidefs.REALM_SYNC, pre_check=_sync_perm)
def realm_sync(ctx: Ctx, p: dict[str, Any]) -> str:
    state = ctx.state
    realm_name = p["realm"]
    realm = state.access.realms.get(realm_name)
    if realm is None:
        raise param_error({"realm": "Realm does not exist."})
    if realm.type not in ("ldap", "ad"):
        raise die(f"Cannot sync realm type '{realm.type}'! Only LDAP/AD realms can be synced.")
    scope = p.get("scope", "both")  # the realm's sync-defaults-options in pvesim
    dry_run = bool(p.get("dry-run"))
    enable_new = 1 if p.get("enable-new", 1) else 0
    remove = set(split_list(p.get("remove-vanished", "none").replace("none", "")))
    node = next(iter(state.nodes))

    def worker(w: WorkerContext) -> Worker:
        acc = state.access
        w.log(f"starting sync for realm {realm_name}")
        yield from w.work(0.5)
        directory = acc.directory.get(realm_name, {})
        uids = [str(u) for u in directory.get("users", [])]
        groups = {str(g): [str(m) for m in ms] for g, ms in directory.get("groups", {}).items()}
        w.log(
            "got data from server, updating "
            + {"users": "users", "groups": "groups"}.get(scope, "users and groups")
        )
        if scope in ("users", "both"):
            w.log("syncing users")
            wanted = {f"{uid}@{realm_name}" for uid in uids}
            for userid in sorted(wanted):
                if userid in acc.users:
                    w.log(f"updated user '{userid}'")
                else:
                    w.log(f"adding user '{userid}'")
                    if not dry_run:
                        acc.users[userid] = User(userid, enable=enable_new)
            if "entry" in remove:
                for userid in sorted(
                    u for u in acc.users if u.endswith(f"@{realm_name}") and u not in wanted
                ):
                    w.log(f"removed user '{userid}'")
                    if not dry_run:
                        del acc.users[userid]
                        if "acl" in remove:
                            acc.acl = [a for a in acc.acl if a.ugid != userid]
        if scope in ("groups", "both"):
            w.log("syncing groups")
            for name, members in sorted(groups.items()):
                group = f"{name}-{realm_name}"
                w.log(f"{'updated' if group in acc.groups else 'adding'} group '{group}'")
                if not dry_run:
                    acc.groups[group] = {
                        f"{m}@{realm_name}" for m in members if f"{m}@{realm_name}" in acc.users
                    }
        yield from w.work(0.5)
        if dry_run:
            w.log("NOTE: dry run, not saving the configuration")
        else:
            w.log("updating users and groups configuration")
            w.log("successfully updated users and groups configuration")
        state.mark_dirty()

    wtype = "auth-realm-sync-test" if dry_run else "auth-realm-sync"
    return state.fork_worker(node, wtype, realm_name, ctx.authuser, worker)


@route("GET", "/access/users", params=apidefs.USERS_LIST)
def users_index(ctx: Ctx, p: dict[str, Any]) -> list[dict[str, Any]]:
    state = ctx.state
    acc = state.access
    can_all = ctx.check_any("/access/groups", ["User.Modify", "Sys.Audit"], noerr=True)
    me = ctx.authuser.split("!", 1)[0]
    out = []
    for userid, user in sorted(acc.users.items()):
        if not can_all and userid != me:
            continue
        if p.get("enabled") is not None and bool(user.enable) != bool(p["enabled"]):
            continue
        realm = acc.realms.get(user.realm)
        entry: dict[str, Any] = {"userid": userid, "enable": user.enable, "expire": user.expire}
        if realm is not None:
            entry["realm-type"] = realm.type
        for key in ("firstname", "lastname", "email", "comment"):
            if getattr(user, key):
                entry[key] = getattr(user, key)
        groups = sorted(g for g, members in acc.groups.items() if userid in members)
        if groups:
            entry["groups"] = ",".join(groups)
        if p.get("full") and user.tokens:
            entry["tokens"] = [
                {
                    "tokenid": name,
                    "expire": t.expire,
                    "privsep": t.privsep,
                    **({"comment": t.comment} if t.comment else {}),
                }
                for name, t in sorted(user.tokens.items())
            ]
        out.append(entry)
    return out
