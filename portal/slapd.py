"""A private OpenLDAP slapd for the demo and the tests: cn=config built with slapadd, a
loopback port, its own directory, stopped by its PID (docs: ../shared/reference, section 3).

The directory is `dc=example,dc=test` with ou=people, ou=groups (groupOfNames),
ou=services (the portal's bind account, which may write below ou=containers and the
SSH keys of people) and ou=containers (the access groups the portal manages).
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import ldap3

from portal.procs import BASE_DIR, Managed, find_binary, free_port, port_open, wait_until

SUFFIX = "dc=example,dc=test"
ADMIN_DN = f"cn=admin,{SUFFIX}"
PORTAL_DN = f"cn=portal,ou=services,{SUFFIX}"
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
CONTAINERS = f"ou=containers,{SUFFIX}"


def ssha(password: str) -> str:
    salt = secrets.token_bytes(8)
    # {SSHA}, salted SHA-1: the scheme slapd checks out of the box (a loopback demo/test).
    digest = hashlib.sha1(password.encode() + salt).digest()  # noqa: S324
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def group_dn(name: str) -> str:
    return f"cn={name},{GROUPS}"


@dataclass(frozen=True)
class Person:
    uid: str
    given: str
    sn: str
    password: str
    groups: tuple[str, ...] = ()

    @property
    def dn(self) -> str:
        return f"uid={self.uid},{PEOPLE}"

    @property
    def mail(self) -> str:
        return f"{self.uid}@example.test"


def config_ldif(run: Path, *, admin_password: str, lpk_schema: bool) -> str:
    schemas = [
        f"file:///etc/ldap/schema/{n}.ldif" for n in ("core", "cosine", "inetorgperson", "nis")
    ]
    if lpk_schema:
        schemas.append(f"file://{BASE_DIR / 'deploy' / 'ldap' / 'openssh-lpk.ldif'}")
    includes = "\n".join(f"include: {s}" for s in schemas)
    key_attrs = "sshPublicKey,objectClass" if lpk_schema else "objectClass"
    return f"""dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: {run}/slapd.pid
olcArgsFile: {run}/slapd.args

dn: cn=module{{0}},cn=config
objectClass: olcModuleList
cn: module{{0}}
olcModulePath: /usr/lib/ldap
olcModuleLoad: back_mdb
olcModuleLoad: memberof

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

{includes}

dn: olcDatabase={{-1}}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {{-1}}frontend
olcSizeLimit: 500

dn: olcDatabase={{0}}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {{0}}config
olcAccess: {{0}}to * by * none

dn: olcDatabase={{1}}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{1}}mdb
olcSuffix: {SUFFIX}
olcRootDN: {ADMIN_DN}
olcRootPW: {ssha(admin_password)}
olcDbDirectory: {run}/data
olcDbMaxSize: 67108864
olcDbIndex: objectClass eq
olcDbIndex: uid,cn,memberUid,member eq
olcAccess: {{0}}to attrs=userPassword by self write by anonymous auth by * none
olcAccess: {{1}}to dn.subtree="{CONTAINERS}" by dn.exact="{PORTAL_DN}" write by users read by * none
olcAccess: {{2}}to dn.subtree="{PEOPLE}" attrs={key_attrs} by dn.exact="{PORTAL_DN}" write by users read by anonymous auth
olcAccess: {{3}}to * by users read by anonymous auth

dn: olcOverlay={{0}}memberof,olcDatabase={{1}}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcMemberOf
olcOverlay: {{0}}memberof
olcMemberOfRefInt: TRUE
"""


def find_slapd() -> tuple[str, str] | None:
    """(slapd, slapadd) when OpenLDAP's server is installed, else None."""
    found = []
    for name in ("slapd", "slapadd"):
        path = find_binary(name)
        if path is None:
            return None
        found.append(path)
    return found[0], found[1]


@dataclass
class Slapd:
    """slapd on 127.0.0.1:<port>, loaded with `people` and `groups` on its first start.

    The data stay in `run_dir`: a later start (another port is fine) finds them again.
    """

    run_dir: Path
    slapd: str
    slapadd: str
    people: tuple[Person, ...] = ()
    groups: tuple[str, ...] = ()
    admin_password: str = "rootsecret"
    portal_password: str = "portal-service-pw"
    lpk_schema: bool = True
    port: int = field(default_factory=free_port)
    process: Managed | None = None

    @property
    def uri(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def settings(self, *, staff_group: str = "") -> dict[str, str]:
        """The portal's settings for this directory, as environment variables."""
        out = {
            "AUTH_LDAP_SERVER_URI": self.uri,
            "AUTH_LDAP_BIND_DN": PORTAL_DN,
            "AUTH_LDAP_BIND_PASSWORD": self.portal_password,
            "LDAP_BASE_DN": SUFFIX,
        }
        if staff_group:
            out["AUTH_LDAP_STAFF_GROUP"] = group_dn(staff_group)
        return out

    def start(self) -> Slapd:
        """Start (or restart, keeping the data) the server; the first start loads the entries."""
        first = not (self.run_dir / "slapd.d").exists()
        if first:
            self._build()
        self.process = Managed(
            [self.slapd, "-h", f"{self.uri}/", "-F", str(self.run_dir / "slapd.d"), "-d", "0"],
            log_path=self.run_dir / "slapd.log",
        ).start()
        try:
            wait_until(self._ready, timeout=15, what="slapd")
            if first:
                self.load()
        except BaseException:
            self.stop()
            if first:  # a half-loaded directory would be found again next time
                shutil.rmtree(self.run_dir / "slapd.d", ignore_errors=True)
            raise
        return self

    def _ready(self) -> bool:
        if self.process is not None and not self.process.alive():
            raise RuntimeError(f"slapd exited: {self.process.log_text()[-2000:]}")
        return port_open("127.0.0.1", self.port)

    def _build(self) -> None:
        for sub in ("slapd.d", "data"):
            shutil.rmtree(self.run_dir / sub, ignore_errors=True)
            (self.run_dir / sub).mkdir(parents=True)
        ldif = self.run_dir / "config.ldif"
        ldif.write_text(
            config_ldif(
                self.run_dir, admin_password=self.admin_password, lpk_schema=self.lpk_schema
            )
        )
        ldif.chmod(0o600)  # it holds the root password's hash
        done = subprocess.run(
            [self.slapadd, "-n", "0", "-F", str(self.run_dir / "slapd.d"), "-l", str(ldif)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if done.returncode:
            shutil.rmtree(self.run_dir / "slapd.d", ignore_errors=True)
            raise RuntimeError(f"slapadd failed ({done.returncode}): {done.stderr[-2000:]}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(sig=signal.SIGINT, timeout=10)
            self.process = None

    def pause(self) -> None:
        """SIGSTOP: the port still accepts connections but nothing answers (a hung server)."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def admin(self) -> ldap3.Connection:
        server = ldap3.Server(self.uri, get_info=ldap3.SCHEMA, connect_timeout=5)
        return ldap3.Connection(
            server,
            ADMIN_DN,
            self.admin_password,
            auto_bind=True,
            raise_exceptions=True,
            receive_timeout=5,
        )

    def load(self) -> None:
        conn = self.admin()
        conn.add(SUFFIX, ["dcObject", "organization"], {"dc": "example", "o": "Example"})
        for ou in ("people", "groups", "services", "containers"):
            conn.add(f"ou={ou},{SUFFIX}", ["organizationalUnit"], {"ou": ou})
        conn.add(
            PORTAL_DN,
            ["organizationalRole", "simpleSecurityObject"],
            {"cn": "portal", "userPassword": ssha(self.portal_password)},
        )
        for n, p in enumerate(self.people):
            conn.add(
                p.dn,
                ["inetOrgPerson", "posixAccount", "shadowAccount"],
                {
                    "uid": p.uid,
                    "cn": f"{p.given} {p.sn}",
                    "givenName": p.given,
                    "sn": p.sn,
                    "mail": p.mail,
                    "uidNumber": 10001 + n,
                    "gidNumber": 10000,
                    "homeDirectory": f"/home/{p.uid}",
                    "loginShell": "/bin/bash",
                    "userPassword": ssha(p.password),
                },
            )
        for g in self.groups:
            members = [p.dn for p in self.people if g in p.groups]
            conn.add(group_dn(g), ["groupOfNames"], {"cn": g, "member": members})
        conn.unbind()
