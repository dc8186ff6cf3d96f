"""Directory writes through ldap3: container access groups and users' SSH keys.

One connection pool per configuration (a process keeps one), every call bounded by
`AUTH_LDAP_TIMEOUT`. Errors are sorted into the portal's hierarchy: a directory that
cannot be reached, times out or says it is busy is `DirectoryUnavailable` (a job
retries it); one that refuses an operation is `DirectoryError` (the job fails with
the directory's own words). Nothing here is ever skipped quietly.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import ssl
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import ldap3
from django.conf import settings
from ldap3.core import exceptions as lx
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn

from portal.errors import ErrorCode, UpstreamError, UpstreamUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

OWNER_MARK = re.compile(r"cluster-portal container (\d+)\b")


class DirectoryUnavailable(UpstreamUnavailable):
    """The directory cannot be reached, timed out, or is busy: worth retrying."""

    code = ErrorCode.DIRECTORY_UNAVAILABLE


class DirectoryError(UpstreamError):
    """The directory refused an operation for good (access rights, schema, ...)."""

    code = ErrorCode.DIRECTORY_ERROR


_TRANSIENT = (
    lx.LDAPCommunicationError,  # socket open / send / receive, session terminated
    lx.LDAPResponseTimeoutError,
    lx.LDAPMaximumRetriesError,
    lx.LDAPBusyResult,
    lx.LDAPUnavailableResult,
    lx.LDAPServerPoolExhaustedError,
    lx.LDAPStartTLSError,
    OSError,
)


def classify(exc: Exception, what: str) -> Exception:
    if isinstance(exc, DirectoryError | DirectoryUnavailable):
        return exc
    if isinstance(exc, _TRANSIENT):
        return DirectoryUnavailable(
            f"the LDAP directory is unavailable ({what}: {exc.__class__.__name__}"
            + (f": {exc}" if str(exc) else "")
            + ")"
        )
    if isinstance(exc, lx.LDAPBindError):
        return DirectoryError(
            "the LDAP directory refused the portal's bind DN; an operator must check "
            "the portal's directory account and its password"
        )
    if isinstance(exc, lx.LDAPOperationResult):
        return DirectoryError(
            f"the LDAP directory refused {what}: {exc.description or exc.result}"
            + (f" ({exc.message})" if exc.message else "")
        )
    if isinstance(exc, lx.LDAPException):
        return DirectoryError(f"LDAP error during {what}: {exc}")
    return exc


@dataclass(frozen=True)
class DirectoryConfig:
    uri: str
    bind_dn: str
    password: str = field(repr=False)
    start_tls: bool
    ca_file: str
    timeout: float
    pool_size: int
    user_base: str
    uid_attr: str
    group_base: str
    group_prefix: str
    group_type: str
    gid_base: int
    ssh_keys: bool

    @classmethod
    def from_settings(cls) -> DirectoryConfig | None:
        """The configuration from settings, or None when no directory is configured."""
        if not settings.AUTH_LDAP_SERVER_URI:
            return None
        return cls(
            uri=settings.AUTH_LDAP_SERVER_URI,
            bind_dn=settings.LDAP_WRITE_BIND_DN or settings.AUTH_LDAP_BIND_DN,
            password=settings.LDAP_WRITE_BIND_PASSWORD or settings.AUTH_LDAP_BIND_PASSWORD,
            start_tls=settings.AUTH_LDAP_START_TLS,
            ca_file=settings.AUTH_LDAP_CA_FILE,
            timeout=float(settings.AUTH_LDAP_TIMEOUT),
            pool_size=max(1, int(settings.LDAP_POOL_SIZE)),
            user_base=settings.AUTH_LDAP_USER_SEARCH_BASE,
            uid_attr=settings.LDAP_USER_UID_ATTR,
            group_base=settings.LDAP_CONTAINER_GROUP_BASE,
            group_prefix=settings.LDAP_CONTAINER_GROUP_PREFIX,
            group_type=settings.LDAP_CONTAINER_GROUP_TYPE,
            gid_base=int(settings.LDAP_CONTAINER_GID_BASE),
            ssh_keys=bool(settings.LDAP_SSH_KEYS),
        )


class ConnectionPool:
    """At most `pool_size` bound connections, reused; a broken one is dropped, not returned."""

    def __init__(self, cfg: DirectoryConfig) -> None:
        self.cfg = cfg
        tls = None
        if cfg.ca_file or cfg.start_tls or cfg.uri.lower().startswith("ldaps://"):
            tls = ldap3.Tls(
                ca_certs_file=cfg.ca_file or None,
                validate=ssl.CERT_REQUIRED,
                version=ssl.PROTOCOL_TLS_CLIENT,
            )
        self._tls = tls
        self._idle: list[ldap3.Connection] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(cfg.pool_size)

    def _open(self) -> ldap3.Connection:
        # A Server per connection: ldap3 remembers an address that failed once as
        # unavailable, which would outlive a directory's restart.
        server = ldap3.Server(
            self.cfg.uri, get_info=ldap3.SCHEMA, tls=self._tls, connect_timeout=self.cfg.timeout
        )
        conn = ldap3.Connection(
            server,
            user=self.cfg.bind_dn or None,
            password=self.cfg.password or None,
            client_strategy=ldap3.SYNC,
            raise_exceptions=True,
            receive_timeout=max(1, math.ceil(self.cfg.timeout)),  # whole seconds (SO_RCVTIMEO)
            auto_bind=ldap3.AUTO_BIND_NONE,
        )
        conn.open()
        if self.cfg.start_tls:
            conn.start_tls()
        try:
            bound = conn.bind()
        except (lx.LDAPInvalidCredentialsResult, lx.LDAPInappropriateAuthenticationResult) as exc:
            raise lx.LDAPBindError(str(exc)) from exc
        if not bound:
            raise lx.LDAPBindError(conn.result.get("description", "bind failed"))
        return conn

    @contextlib.contextmanager
    def connection(self) -> Iterator[ldap3.Connection]:
        if not self._slots.acquire(timeout=self.cfg.timeout):
            raise DirectoryUnavailable(
                f"all {self.cfg.pool_size} LDAP connections stayed busy for {self.cfg.timeout:.0f} s"
            )
        conn: ldap3.Connection | None = None
        try:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None or conn.closed:
                conn = self._open()
                conn.portal_reused = False
            else:
                conn.portal_reused = True
            yield conn
        except BaseException as exc:
            if conn is not None and not isinstance(exc, lx.LDAPOperationResult):
                with contextlib.suppress(Exception):
                    conn.unbind()
                conn = None
            raise
        finally:
            if conn is not None and not conn.closed:
                with self._lock:
                    self._idle.append(conn)
            self._slots.release()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            with contextlib.suppress(Exception):
                conn.unbind()


@dataclass
class AccessGroup:
    dn: str
    name: str
    container_id: int | None
    member_uids: list[str]
    gid: int | None = None


@dataclass
class GroupChange:
    dn: str
    created: bool = False
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


class Directory:
    """The operations the portal makes on the directory."""

    def __init__(self, cfg: DirectoryConfig) -> None:
        self.cfg = cfg
        self.pool = ConnectionPool(cfg)

    def _run(self, what: str, fn: Callable[[ldap3.Connection], T]) -> T:
        """Run fn on a pooled connection; a pooled connection the server has since closed
        (a restart, an idle timeout) is replaced once, transparently."""
        for attempt in (1, 2):
            reused = False
            try:
                with self.pool.connection() as conn:
                    reused = bool(getattr(conn, "portal_reused", False))
                    return fn(conn)
            except Exception as exc:
                if attempt == 1 and reused and isinstance(exc, lx.LDAPCommunicationError):
                    log.info("a pooled LDAP connection was closed by the server; reconnecting")
                    continue
                mapped = classify(exc, what)
                if mapped is exc:
                    raise
                raise mapped from exc
        raise AssertionError("unreachable")

    # -- users -----------------------------------------------------------------------
    def user_dns(self, uids: Sequence[str]) -> dict[str, str]:
        """uid -> DN for the users the directory has (one search)."""
        wanted = sorted({u for u in uids if u})
        if not wanted:
            return {}
        attr = self.cfg.uid_attr
        terms = "".join(f"({attr}={escape_filter_chars(u)})" for u in wanted)

        def search(conn: ldap3.Connection) -> dict[str, str]:
            conn.search(
                self.cfg.user_base,
                f"(|{terms})",
                search_scope=ldap3.SUBTREE,
                attributes=[attr],
                time_limit=int(self.cfg.timeout) or 1,
            )
            found: dict[str, str] = {}
            for entry in conn.response or []:
                if entry.get("type") != "searchResEntry":
                    continue
                values = entry["attributes"].get(attr) or []
                value = values[0] if isinstance(values, list) and values else values
                if isinstance(value, str) and value in wanted:
                    found[value] = entry["dn"]
            return found

        return self._run("a user search", search)

    def user_dn(self, uid: str) -> str | None:
        return self.user_dns([uid]).get(uid)

    # -- access groups ---------------------------------------------------------------
    def group_name(self, hostname: str) -> str:
        return f"{self.cfg.group_prefix}{hostname}"

    def group_dn(self, name: str) -> str:
        return f"cn={escape_rdn(name)},{self.cfg.group_base}"

    def gid_for(self, container_id: int) -> int:
        return self.cfg.gid_base + container_id

    def group_get(self, name: str) -> AccessGroup | None:
        dn = self.group_dn(name)

        def read(conn: ldap3.Connection) -> AccessGroup | None:
            try:
                conn.search(
                    dn,
                    "(objectClass=*)",
                    search_scope=ldap3.BASE,
                    attributes=["cn", "description", "memberUid", "member", "gidNumber"],
                )
            except lx.LDAPNoSuchObjectResult:
                return None
            if not conn.entries:
                return None
            attrs = conn.response[0]["attributes"]
            return AccessGroup(
                dn=dn,
                name=name,
                container_id=_owner_of(attrs.get("description")),
                member_uids=self._member_uids(attrs),
                gid=_first_int(attrs.get("gidNumber")),
            )

        return self._run(f"reading {dn}", read)

    def _member_uids(self, attrs: dict[str, Any]) -> list[str]:
        if self.cfg.group_type == "posixGroup":
            return sorted(str(v) for v in attrs.get("memberUid") or [])
        prefix = f"{self.cfg.uid_attr}=".lower()
        uids = []
        for dn in attrs.get("member") or []:
            first = str(dn).split(",", 1)[0]
            if first.lower().startswith(prefix):
                uids.append(first.split("=", 1)[1])
        return sorted(uids)

    def group_sync(
        self, name: str, *, container_id: int, members: Sequence[str], description: str
    ) -> GroupChange:
        """Make the group exist with exactly these members (the ones the directory has)."""
        dn = self.group_dn(name)
        dns = self.user_dns(members)
        change = GroupChange(dn=dn, missing=sorted(set(members) - set(dns)))
        wanted = sorted(dns)
        desc = f"cluster-portal container {container_id}: {description}"[:250]
        if self.cfg.group_type == "posixGroup":
            attrs: dict[str, Any] = {
                "objectClass": ["top", "posixGroup"],
                "cn": name,
                "gidNumber": self.gid_for(container_id),
                "description": desc,
            }
            member_attr, member_values = "memberUid", wanted
            if wanted:
                attrs["memberUid"] = wanted
        else:
            # groupOfNames needs a member: an empty group names itself, which matches nobody.
            member_attr, member_values = "member", [dns[u] for u in wanted] or [dn]
            attrs = {
                "objectClass": ["top", "groupOfNames"],
                "cn": name,
                "member": member_values,
                "description": desc,
            }
        existing = self.group_get(name)

        def write(conn: ldap3.Connection) -> None:
            if existing is None:
                try:
                    try:
                        conn.add(dn, attributes=attrs)
                    except lx.LDAPNoSuchObjectResult:
                        self._ensure_base(conn)
                        conn.add(dn, attributes=attrs)
                    change.created = True
                    change.added = wanted
                    return
                except lx.LDAPEntryAlreadyExistsResult:
                    pass  # made meanwhile (or by a lost first try): fall through to a modify
            mods: dict[str, Any] = {
                member_attr: [(ldap3.MODIFY_REPLACE, member_values)],
                "description": [(ldap3.MODIFY_REPLACE, [desc])],
            }
            if self.cfg.group_type == "posixGroup":
                mods["gidNumber"] = [(ldap3.MODIFY_REPLACE, [self.gid_for(container_id)])]
            conn.modify(dn, mods)
            before = existing.member_uids if existing is not None else []
            change.added = sorted(set(wanted) - set(before))
            change.removed = sorted(set(before) - set(wanted))

        self._run(f"writing {dn}", write)
        return change

    def _ensure_base(self, conn: ldap3.Connection) -> None:
        """Create the groups' organisational unit (one level) if it is missing."""
        base = self.cfg.group_base
        rdn = base.split(",", 1)[0]
        kind, _, value = rdn.partition("=")
        if kind.lower() != "ou":
            raise DirectoryError(f"{base} does not exist and is not an organisational unit")
        conn.add(base, attributes={"objectClass": ["top", "organizationalUnit"], "ou": value})
        log.info("created %s", base)

    def group_delete(self, name: str) -> bool:
        dn = self.group_dn(name)

        def delete(conn: ldap3.Connection) -> bool:
            try:
                conn.delete(dn)
            except lx.LDAPNoSuchObjectResult:
                return False
            return True

        return self._run(f"deleting {dn}", delete)

    # -- SSH keys ----------------------------------------------------------------------
    def supports_ssh_keys(self) -> bool:
        """True when the schema has `sshPublicKey` and `ldapPublicKey` (openssh-lpk)."""
        if not self.cfg.ssh_keys:
            return False

        def probe(conn: ldap3.Connection) -> bool:
            schema = conn.server.schema
            if schema is None:
                return False
            return (
                "sshPublicKey" in schema.attribute_types
                and "ldapPublicKey" in schema.object_classes
            )

        return self._run("reading the schema", probe)

    def ssh_keys_set(self, uid: str, keys: Sequence[str]) -> bool | None:
        """Replace the user's sshPublicKey values; None if the directory has no such user."""
        dn = self.user_dn(uid)
        if dn is None:
            return None

        def write(conn: ldap3.Connection) -> bool:
            conn.search(dn, "(objectClass=*)", search_scope=ldap3.BASE, attributes=["objectClass"])
            classes = {
                str(c).lower() for c in conn.response[0]["attributes"].get("objectClass", [])
            }
            mods: dict[str, Any] = {}
            if "ldappublickey" not in classes:
                if not keys:
                    return True
                mods["objectClass"] = [(ldap3.MODIFY_ADD, ["ldapPublicKey"])]
            mods["sshPublicKey"] = [(ldap3.MODIFY_REPLACE, list(keys))]
            conn.modify(dn, mods)
            return True

        return self._run(f"writing the SSH keys of {dn}", write)

    def ssh_keys_get(self, uid: str) -> list[str] | None:
        dn = self.user_dn(uid)
        if dn is None:
            return None

        def read(conn: ldap3.Connection) -> list[str]:
            conn.search(dn, "(objectClass=*)", search_scope=ldap3.BASE, attributes=["*"])
            values = conn.response[0]["attributes"].get("sshPublicKey") or []
            return [v.decode() if isinstance(v, bytes) else str(v) for v in values]

        return self._run(f"reading the SSH keys of {dn}", read)


def _owner_of(description: Any) -> int | None:
    values = description if isinstance(description, list) else [description]
    for value in values:
        m = OWNER_MARK.search(str(value or ""))
        if m:
            return int(m.group(1))
    return None


def _first_int(value: Any) -> int | None:
    if isinstance(value, list):
        value = value[0] if value else None
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


_directories: dict[DirectoryConfig, Directory] = {}
_directories_lock = threading.Lock()


def get_directory() -> Directory | None:
    """The process's directory service for the current settings (None: no LDAP configured)."""
    cfg = DirectoryConfig.from_settings()
    if cfg is None:
        return None
    with _directories_lock:
        found = _directories.get(cfg)
        if found is None:
            found = _directories[cfg] = Directory(cfg)
        return found


def close_all() -> None:
    """Drop every pooled connection (tests that restart the directory use this)."""
    with _directories_lock:
        dirs = list(_directories.values())
        _directories.clear()
    for d in dirs:
        d.pool.close()
