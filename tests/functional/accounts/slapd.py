"""The tests' directory: portal.slapd's private slapd, loaded with the people below, and
helpers for assertions on what the portal wrote into it."""

from __future__ import annotations

from dataclasses import dataclass

import ldap3

from portal import slapd as base
from portal.slapd import CONTAINERS, GROUPS, PEOPLE, PORTAL_DN, SUFFIX, Person

__all__ = ["CONTAINERS", "GROUPS", "PEOPLE", "PORTAL_DN", "PORTAL_PW", "SUFFIX", "Slapd"]

ADMIN_PW = "rootsecret"
PORTAL_PW = "portal-service-pw"

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


@dataclass
class Slapd(base.Slapd):
    """slapd on 127.0.0.1:<port> with the test directory loaded."""

    people: tuple[Person, ...] = PEOPLE_LIST
    groups: tuple[str, ...] = GROUP_NAMES
    admin_password: str = ADMIN_PW
    portal_password: str = PORTAL_PW

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
