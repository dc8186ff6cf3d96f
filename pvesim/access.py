"""Users, roles, ACLs, tickets and CSRF tokens (pve-access-control's model)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

# Privileges grouped as AccessControl.pm's $privgroups: roles are derived from it.
_PRIVGROUPS: dict[str, dict[str, tuple[str, ...]]] = {
    "VM": {
        "root": (),
        "admin": (
            "VM.Config.Disk",
            "VM.Config.CPU",
            "VM.Config.Memory",
            "VM.Config.Network",
            "VM.Config.HWType",
            "VM.Config.Options",
            "VM.Allocate",
            "VM.Clone",
            "VM.Migrate",
            "VM.Replicate",
            "VM.Snapshot",
            "VM.Snapshot.Rollback",
            "VM.GuestAgent.FileRead",
            "VM.GuestAgent.FileWrite",
            "VM.GuestAgent.FileSystemMgmt",
            "VM.GuestAgent.Unrestricted",
        ),
        "user": (
            "VM.Config.CDROM",
            "VM.Config.Cloudinit",
            "VM.Console",
            "VM.Backup",
            "VM.PowerMgmt",
            "VM.GuestAgent.Audit",
        ),
        "audit": ("VM.Audit",),
    },
    "Sys": {
        "root": ("Sys.PowerMgmt", "Sys.Modify"),
        "admin": (
            "Permissions.Modify",
            "Sys.Console",
            "Sys.Syslog",
            "Sys.Incoming",
            "Sys.AccessNetwork",
        ),
        "user": (),
        "audit": ("Sys.Audit",),
    },
    "Datastore": {
        "root": (),
        "admin": ("Datastore.Allocate", "Datastore.AllocateTemplate"),
        "user": ("Datastore.AllocateSpace",),
        "audit": ("Datastore.Audit",),
    },
    "SDN": {
        "root": (),
        "admin": ("SDN.Allocate",),
        "user": ("SDN.Use",),
        "audit": ("SDN.Audit",),
    },
    "User": {
        "root": ("Realm.Allocate",),
        "admin": ("User.Modify", "Group.Allocate", "Realm.AllocateUser"),
        "user": (),
        "audit": (),
    },
    "Pool": {
        "root": (),
        "admin": ("Pool.Allocate",),
        "user": ("Pool.Audit",),
        "audit": ("Pool.Audit",),
    },
    "Mapping": {
        "root": (),
        "admin": ("Mapping.Modify",),
        "user": ("Mapping.Use",),
        "audit": ("Mapping.Audit",),
    },
}


def _build_roles() -> tuple[frozenset[str], dict[str, frozenset[str]]]:
    valid: set[str] = set()
    roles: dict[str, set[str]] = {"NoAccess": set(), "PVEAdmin": set(), "PVEAuditor": set()}
    for cat, groups in _PRIVGROUPS.items():
        for level in ("root", "admin", "user", "audit"):
            valid.update(groups[level])
        below_root = (*groups["admin"], *groups["user"], *groups["audit"])
        roles.setdefault(f"PVE{cat}Admin", set()).update(below_root)
        roles["PVEAdmin"].update(below_root)
        if groups["user"]:
            roles.setdefault(f"PVE{cat}User", set()).update((*groups["user"], *groups["audit"]))
        roles["PVEAuditor"].update(groups["audit"])
    roles["PVETemplateUser"] = {"VM.Clone", "VM.Audit"}
    roles["Administrator"] = set(valid)
    return frozenset(valid), {k: frozenset(v) for k, v in roles.items()}


ALL_PRIVS, ROLES = _build_roles()


@dataclass
class Token:
    secret: str
    privsep: int = 1
    expire: int = 0
    comment: str = ""
    revoked: bool = False


@dataclass
class User:
    userid: str
    enable: int = 1
    expire: int = 0
    firstname: str = ""
    lastname: str = ""
    email: str = ""
    comment: str = ""
    password: str | None = None
    tokens: dict[str, Token] = field(default_factory=dict)

    @property
    def realm(self) -> str:
        return self.userid.rsplit("@", 1)[1]


@dataclass
class AclEntry:
    path: str
    type: str  # user | group | token
    ugid: str
    roleid: str
    propagate: int = 1


@dataclass
class Realm:
    realm: str
    type: str
    comment: str = ""


@dataclass
class AccessData:
    users: dict[str, User] = field(default_factory=dict)
    groups: dict[str, set[str]] = field(default_factory=dict)
    acl: list[AclEntry] = field(default_factory=list)
    # Users and tokens given on the command line without a role act like
    # root@pam: they pass every check without an ACL entry.
    superusers: set[str] = field(default_factory=set)
    realms: dict[str, Realm] = field(default_factory=dict)
    # What an LDAP directory would return on sync: realm -> uids / groups.
    directory: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "users": {
                uid: {
                    "enable": u.enable,
                    "expire": u.expire,
                    "firstname": u.firstname,
                    "lastname": u.lastname,
                    "email": u.email,
                    "comment": u.comment,
                    "password": u.password,
                    "tokens": {n: vars(t).copy() for n, t in u.tokens.items()},
                }
                for uid, u in self.users.items()
            },
            "groups": {g: sorted(m) for g, m in self.groups.items()},
            "acl": [vars(a).copy() for a in self.acl],
            "superusers": sorted(self.superusers),
            "realms": {r: vars(v).copy() for r, v in self.realms.items()},
            "directory": self.directory,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AccessData:
        out = cls()
        for uid, u in data.get("users", {}).items():
            tokens = {n: Token(**t) for n, t in u.pop("tokens", {}).items()}
            out.users[uid] = User(userid=uid, tokens=tokens, **u)
        out.groups = {g: set(m) for g, m in data.get("groups", {}).items()}
        out.acl = [AclEntry(**a) for a in data.get("acl", [])]
        out.superusers = set(data.get("superusers", []))
        out.realms = {r: Realm(**v) for r, v in data.get("realms", {}).items()}
        out.directory = data.get("directory", {})
        return out


def split_tokenid(tokenid: str) -> tuple[str, str] | None:
    m = re.fullmatch(r"([^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]+)!([A-Za-z][A-Za-z0-9.\-_]+)", tokenid)
    return (m.group(1), m.group(2)) if m else None


def _roles_at(access: AccessData, subject: str, path: str, is_token: bool) -> set[str]:
    """AccessControl::roles: deeper paths and user entries override."""
    roles: dict[str, int] = {}
    paths = sorted({a.path for a in access.acl})
    for p in paths:
        final = p == path
        if not (p == "/" or final or path.startswith(p + "/")):
            continue
        entries = [a for a in access.acl if a.path == p]
        kinds: Iterable[tuple[str, Iterable[AclEntry]]]
        if is_token:
            kinds = [("token", (a for a in entries if a.type == "token" and a.ugid == subject))]
        else:
            groups = {g for g, members in access.groups.items() if subject in members}
            kinds = [
                ("user", (a for a in entries if a.type == "user" and a.ugid == subject)),
                ("group", (a for a in entries if a.type == "group" and a.ugid in groups)),
            ]
        for _kind, items in kinds:
            new = {a.roleid: a.propagate for a in items if final or a.propagate}
            if new:
                roles = new
                break
    if "NoAccess" in roles:
        return {"NoAccess"}
    return set(roles)


def _privs_of(roles: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for r in roles:
        out |= ROLES.get(r, frozenset())
    return out


def permissions(access: AccessData, subject: str, path: str) -> set[str]:
    """Effective privileges of a user or token on an ACL path."""
    if subject == "root@pam" or subject in access.superusers:
        return set(ALL_PRIVS)
    parts = split_tokenid(subject)
    if parts:
        user = access.users.get(parts[0])
        token = user.tokens.get(parts[1]) if user else None
        if token is None:
            return set()
        user_privs = permissions(access, parts[0], path)
        if not token.privsep:
            return user_privs
        return user_privs & _privs_of(_roles_at(access, subject, path, is_token=True))
    user = access.users.get(subject)
    if user is None or not user.enable:
        return set()
    return _privs_of(_roles_at(access, subject, path, is_token=False))


def normalize_acl_path(path: str) -> str | None:
    if not path:
        return None
    path = re.sub(r"/+", "/", path)
    path = path.rstrip("/") or "/"
    if not path.startswith("/"):
        path = "/" + path
    if not re.fullmatch(r"[A-Za-z0-9.\-_/]+", path):
        return None
    return path


_ACL_PATH_RE = re.compile(
    r"^(/|/access|/access/groups|/access/groups/[\w.\-]+|/access/realm|/access/realm/[\w.\-]+"
    r"|/nodes|/nodes/[\w.\-]+|/pool|/pool/[\w.\-]+|/sdn|/sdn/zones/[\w.\-]+|/sdn/vnets/[\w.\-]+"
    r"|/storage|/storage/[\w.\-]+|/vms|/vms/[1-9][0-9]{2,}|/mapping(/[\w.\-]+){0,2})$"
)


def check_acl_path(path: str) -> bool:
    return bool(_ACL_PATH_RE.match(path))


class TicketAuthority:
    """Signs and verifies PVE tickets and CSRF prevention tokens.

    Tickets are ``PVE:<user>:<hex time>::<base64 RSA signature>`` and live two
    hours; CSRF tokens are ``<hex time>:<base64 HMAC-SHA256 of "time:user">``.
    """

    LIFETIME = 7200
    SKEW = 300

    def __init__(self, state_dir: Path) -> None:
        key_path = state_dir / "authkey.key"
        if key_path.exists():
            loaded = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            assert isinstance(loaded, rsa.RSAPrivateKey)
            self._key = loaded
        else:
            self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            _write_private(
                key_path,
                self._key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ),
            )
        secret_path = state_dir / "pve-www.key"
        if secret_path.exists():
            self._csrf_secret = secret_path.read_bytes()
        else:
            self._csrf_secret = secrets.token_bytes(32)
            _write_private(secret_path, self._csrf_secret)

    def create_ticket(self, userid: str, now: float) -> str:
        plain = f"PVE:{userid}:{int(now):08X}"
        sig = self._key.sign(plain.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{plain}::{base64.b64encode(sig).decode()}"

    def verify_ticket(self, ticket: str, now: float) -> tuple[str, int] | None:
        """Return (userid, age) for a valid ticket, else None."""
        m = re.fullmatch(r"(PVE:(\S+):([0-9A-F]{8}))::(\S+)", ticket)
        if not m:
            return None
        try:
            sig = base64.b64decode(m.group(4), validate=True)
            self._key.public_key().verify(
                sig, m.group(1).encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except (InvalidSignature, ValueError):
            return None
        age = int(now) - int(m.group(3), 16)
        if age < -self.SKEW or age > self.LIFETIME:
            return None
        return m.group(2), age

    def create_csrf(self, userid: str, now: float) -> str:
        stamp = f"{int(now):08X}"
        return f"{stamp}:{self._csrf_digest(stamp, userid)}"

    def verify_csrf(self, userid: str, token: str | None, now: float) -> bool:
        if not token:
            return False
        m = re.fullmatch(r"([A-Z0-9]{8}):(\S+)", token)
        if not m:
            return False
        age = int(now) - int(m.group(1), 16)
        if age < -self.SKEW or age > self.LIFETIME:
            return False
        return hmac.compare_digest(m.group(2), self._csrf_digest(m.group(1), userid))

    def _csrf_digest(self, stamp: str, userid: str) -> str:
        mac = hmac.new(self._csrf_secret, f"{stamp}:{userid}".encode(), hashlib.sha256).digest()
        # Perl's hmac_sha256_base64 has no padding.
        return base64.b64encode(mac).decode().rstrip("=")


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
