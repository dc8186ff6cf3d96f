"""A private OpenLDAP slapd for the tests: cn=config built with slapadd, loopback high port,
its own directory, stopped by its PID (see ../shared/reference/components.md, section 3)."""

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

from portal.procs import BASE_DIR, Managed, free_port, port_open, wait_until

SUFFIX = "dc=example,dc=test"
ADMIN_DN = f"cn=admin,{SUFFIX}"
ADMIN_PW = "rootsecret"
PORTAL_DN = f"cn=portal,ou=services,{SUFFIX}"
PORTAL_PW = "portal-service-pw"
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
CONTAINERS = f"ou=containers,{SUFFIX}"


def ssha(password: str) -> str:
    salt = secrets.token_bytes(8)
    digest = hashlib.sha1(password.encode() + salt).digest()  # {SSHA} is salted SHA-1
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


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


# The directory the tests log in against: who is in which group.
PEOPLE_LIST: tuple[Person, ...] = (
    Person("alice", "Alice", "Admin", "alice-pw", ("portal-admins", "portal-users")),
    Person("bob", "Bob", "Builder", "bob-pw", ("portal-users",)),
    Person("carol", "Carol", "Student", "carol-pw", ("students",)),
    Person("dave", "Dave", "Researcher", "dave-pw", ("students", "researchers")),
    Person("erin", "Erin", "Engineer", "erin-pw", ("portal-users",)),
    Person("frank", "Frank", "Nogroup", "frank-pw", ()),
    Person("gina", "Gina", "Newcomer", "gina-pw", ("portal-users",)),
)
# Users Proxmox's LDAP realm does not find (yet): see the `pve` fixture.
NOT_IN_REALM = ("frank", "gina")
GROUP_NAMES = ("portal-admins", "portal-users", "students", "researchers")


def config_ldif(run: Path, *, lpk_schema: bool) -> str:
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
olcRootPW: {ssha(ADMIN_PW)}
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


@dataclass
class Slapd:
    """slapd on 127.0.0.1:<port> with the test directory loaded."""

    run_dir: Path
    slapd: str
    slapadd: str
    lpk_schema: bool = True
    port: int = field(default_factory=free_port)
    process: Managed | None = None

    @property
    def uri(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    def start(self) -> Slapd:
        """Start (or restart, keeping the data) the server; the first start loads the LDIF."""
        first = not (self.run_dir / "slapd.d").exists()
        if first:
            for sub in ("slapd.d", "data"):
                shutil.rmtree(self.run_dir / sub, ignore_errors=True)
                (self.run_dir / sub).mkdir(parents=True)
            (self.run_dir / "config.ldif").write_text(
                config_ldif(self.run_dir, lpk_schema=self.lpk_schema)
            )
            done = subprocess.run(
                [
                    self.slapadd,
                    "-n",
                    "0",
                    "-F",
                    str(self.run_dir / "slapd.d"),
                    "-l",
                    str(self.run_dir / "config.ldif"),
                ],
                capture_output=True,
                text=True,
                timeout=30,
            )
            if done.returncode:
                raise RuntimeError(f"slapadd failed ({done.returncode}): {done.stderr[-2000:]}")
        self.process = Managed(
            [self.slapd, "-h", f"{self.uri}/", "-F", str(self.run_dir / "slapd.d"), "-d", "0"],
            log_path=self.run_dir / "slapd.log",
        ).start()
        wait_until(lambda: port_open("127.0.0.1", self.port), timeout=15, what="slapd")
        if first:
            self.load()
        return self

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
            server, ADMIN_DN, ADMIN_PW, auto_bind=True, raise_exceptions=True, receive_timeout=5
        )

    def load(self) -> None:
        conn = self.admin()
        conn.add(SUFFIX, ["dcObject", "organization"], {"dc": "example", "o": "Example"})
        for ou in ("people", "groups", "services", "containers"):
            conn.add(f"ou={ou},{SUFFIX}", ["organizationalUnit"], {"ou": ou})
        conn.add(
            PORTAL_DN,
            ["organizationalRole", "simpleSecurityObject"],
            {"cn": "portal", "userPassword": ssha(PORTAL_PW)},
        )
        for n, p in enumerate(PEOPLE_LIST):
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
        for g in GROUP_NAMES:
            members = [p.dn for p in PEOPLE_LIST if g in p.groups]
            conn.add(f"cn={g},{GROUPS}", ["groupOfNames"], {"cn": g, "member": members})
        conn.unbind()

    # -- helpers for assertions ----------------------------------------------------------
    def search(
        self,
        base: str,
        flt: str = "(objectClass=*)",
        attrs: list[str] | None = None,
        scope: str = ldap3.SUBTREE,
    ) -> list[dict]:
        conn = self.admin()
        try:
            conn.search(base, flt, search_scope=scope, attributes=attrs or ["*", "+"])
        except ldap3.core.exceptions.LDAPNoSuchObjectResult:
            return []
        finally:
            pass
        out = [
            dict(e["attributes"], dn=e["dn"])
            for e in conn.response
            if e["type"] == "searchResEntry"
        ]
        conn.unbind()
        return out

    def group(self, cn: str) -> dict | None:
        found = self.search(CONTAINERS, f"(cn={cn})")
        return found[0] if found else None

    def clear_containers(self) -> None:
        """Remove every access group (between tests)."""
        conn = self.admin()
        conn.search(CONTAINERS, "(objectClass=*)", search_scope=ldap3.LEVEL, attributes=["cn"])
        for e in list(conn.response):
            if e["type"] == "searchResEntry":
                conn.delete(e["dn"])
        conn.unbind()

    def clear_ssh_keys(self) -> None:
        conn = self.admin()
        for p in PEOPLE_LIST:
            conn.search(
                p.dn, "(objectClass=*)", search_scope=ldap3.BASE, attributes=["objectClass"]
            )
            classes = [str(c).lower() for c in conn.response[0]["attributes"]["objectClass"]]
            if "ldappublickey" in classes:
                conn.modify(
                    p.dn,
                    {
                        "sshPublicKey": [(ldap3.MODIFY_REPLACE, [])],
                        "objectClass": [(ldap3.MODIFY_DELETE, ["ldapPublicKey"])],
                    },
                )
        conn.unbind()
