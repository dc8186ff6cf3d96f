"""The access steps of container jobs: the directory group and the Proxmox ACLs.

Each function is one step of a job (it gets the JobContext and the step's dict, returns
None or "skipped"); the `access` kind below runs them alone. They reconcile: the group's members and the ACL
entries on `/vms/<vmid>` are made to equal the container's owner and collaborators,
so a step that is retried or re-run is harmless. A directory or Proxmox that is
down raises an `UpstreamUnavailable` subclass, which the runner retries with backoff
and finally fails with the reason; nothing is skipped quietly.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth import get_user_model

from auth import users as auth_users
from auth.directory import AccessGroup, Directory, DirectoryError, get_directory
from auth.models import RealmSync
from auth.selectors import access_usernames
from containers.models import LIVE, Container, ContainerStatus, JobKind, LogLevel, StepState
from containers.proxmox import ProxmoxError

from .kind import JobKindBase, register

if TYPE_CHECKING:
    from .context import JobContext

log = logging.getLogger(__name__)


def acl_path(container: Container) -> str:
    return f"/vms/{container.vmid}"


def proxmox_userid(username: str) -> str:
    return f"{username}@{settings.PROXMOX_REALM}"


NO_DIRECTORY = (
    "No LDAP directory is configured: the access group, SSH login and Proxmox access "
    "steps are skipped"
)


def _no_directory(ctx: JobContext) -> str:
    # Once per job, as information: a portal without a directory is a choice (the demo
    # without slapd says so once, in its banner), and each access step would repeat it.
    ctx.log_once(NO_DIRECTORY)
    return StepState.SKIPPED


def _directory_members(ctx: JobContext) -> list[str] | None:
    """The owner and collaborators that the directory knows (None: no directory)."""
    directory = get_directory()
    if directory is None:
        return None
    wanted = access_usernames(ctx.container)
    known = directory.user_dns(wanted)
    for name in sorted(set(wanted) - set(known)):
        ctx.log(
            f"{name} has no entry in the directory: no SSH login or Proxmox access for them",
            level=LogLevel.WARNING,
        )
    return sorted(known)


# -- the directory group ----------------------------------------------------------------------
def _group(ctx: JobContext) -> tuple[Directory, str, AccessGroup | None] | None:
    """The directory, the container's group name and the group's entry if it has one
    (None: no directory is configured)."""
    directory = get_directory()
    if directory is None:
        return None
    name = directory.group_name(ctx.container.hostname)
    return directory, name, directory.group_get(name)


def access_group_sync(ctx: JobContext, st: dict[str, Any]) -> str | None:
    """Create or update `cn=ct-<hostname>`: exactly the owner and the collaborators."""
    found = _group(ctx)
    if found is None:
        return _no_directory(ctx)
    directory, name, existing = found
    c = ctx.container
    if existing is not None and existing.container_id is not None and existing.container_id != c.pk:
        other = Container.objects.filter(LIVE, pk=existing.container_id).first()
        if other is not None:
            raise DirectoryError(
                f"the access group {existing.dn} belongs to {other} (container "
                f"{other.pk}); an operator must rename or remove one of them"
            )
        ctx.log(f"taking over {existing.dn}, left by a container that is gone")
    change = directory.group_sync(
        name,
        container_id=c.pk,
        members=access_usernames(c),
        description=f"{c.fqdn} (CT {c.vmid})",
    )
    st["group_dn"] = change.dn
    verb = "created" if change.created else "updated"
    parts = []
    if change.added:
        parts.append("added " + ", ".join(change.added))
    if change.removed:
        parts.append("removed " + ", ".join(change.removed))
    ctx.log(f"{verb} {change.dn}" + (f": {'; '.join(parts)}" if parts else " (no change)"))
    for name_missing in change.missing:
        ctx.log(
            f"{name_missing} has no entry in the directory: they cannot log in over SSH",
            level=LogLevel.WARNING,
        )
    return None


def access_group_remove(ctx: JobContext, st: dict[str, Any]) -> str | None:
    found = _group(ctx)
    if found is None:
        return _no_directory(ctx)
    directory, name, existing = found
    c = ctx.container
    if existing is None:
        ctx.log(f"{directory.group_dn(name)} is not in the directory (already gone)")
        return None
    if existing.container_id not in (None, c.pk):
        ctx.log(
            f"{existing.dn} belongs to container {existing.container_id}, not this one; left alone",
            level=LogLevel.WARNING,
        )
        return None
    directory.group_delete(name)
    ctx.log(f"removed {existing.dn}")
    return None


# -- Proxmox ------------------------------------------------------------------------------------
def _proxmox_off(ctx: JobContext) -> str | None:
    if not settings.PROXMOX_ACCESS_ENABLED:
        ctx.log("Proxmox access grants are turned off on this portal")
        return StepState.SKIPPED
    return None


def _realm_sync(ctx: JobContext, st: dict[str, Any], names: list[str]) -> None:
    realm = settings.PROXMOX_REALM

    def begin() -> str:
        ctx.log(f"syncing the Proxmox realm '{realm}' so that it knows {', '.join(names)}")
        return ctx.client.realm_sync(realm)

    ctx.run_task(st, begin)  # resumed: follows the sync already asked for
    users = list(get_user_model().objects.filter(username__in=names))
    auth_users.realm_sync_record(users=users, site=ctx.container.site, realm=realm)
    ctx.log(f"realm '{realm}' synced")


def realm_sync_step(ctx: JobContext, st: dict[str, Any]) -> str | None:
    """The first time a user gets access on a site, Proxmox's LDAP realm is synced first."""
    if (off := _proxmox_off(ctx)) is not None:
        return off
    members = _directory_members(ctx)
    if members is None:
        return _no_directory(ctx)
    synced = set(
        RealmSync.objects.filter(
            site=ctx.container.site,
            realm=settings.PROXMOX_REALM,
            user__username__in=members,
        ).values_list("user__username", flat=True)
    )
    new = [m for m in members if m not in synced]
    if not new and not st.get("upid"):
        ctx.log(f"Proxmox already knows {', '.join(members) or 'everyone'}")
        return StepState.SKIPPED
    _realm_sync(ctx, st, new or members)
    return None


def proxmox_acl_sync(ctx: JobContext, st: dict[str, Any]) -> str | None:
    """Grant the role on /vms/<vmid> to the owner and each collaborator; revoke the rest."""
    if (off := _proxmox_off(ctx)) is not None:
        return off
    members = _directory_members(ctx)
    if members is None:
        return _no_directory(ctx)
    c, role = ctx.container, settings.PROXMOX_VM_ROLE
    path = acl_path(c)
    wanted = {proxmox_userid(m) for m in members}
    current = _granted(ctx, path, role)
    for userid in sorted(wanted - current):
        _grant(ctx, st, path, role, userid)
        ctx.heartbeat()
    for userid in sorted(current - wanted):
        ctx.client.grant_acl(path=path, role=role, users=userid, delete=True)
        ctx.log(f"revoked {role} on {path} from {userid}")
    if wanted == current:
        ctx.log(f"{role} on {path}: {', '.join(sorted(wanted)) or 'nobody'} (no change)")
    return None


def _granted(ctx: JobContext, path: str, role: str) -> set[str]:
    suffix = f"@{settings.PROXMOX_REALM}"
    return {
        str(a["ugid"])
        for a in ctx.client.acl()
        if a.get("path") == path
        and a.get("type") == "user"
        and a.get("roleid") == role
        and str(a.get("ugid", "")).endswith(suffix)
    }


def _grant(ctx: JobContext, st: dict[str, Any], path: str, role: str, userid: str) -> None:
    try:
        ctx.client.grant_acl(path=path, role=role, users=userid)
    except ProxmoxError as exc:
        if "does not exist" not in exc.message or st.get("resynced"):
            raise
        # Proxmox has not seen this user yet (a new account, or a sync that missed it).
        ctx.log(f"Proxmox does not know {userid} yet: {exc.message}", level=LogLevel.WARNING)
        st["resynced"] = True
        _realm_sync(ctx, {}, [userid.rsplit("@", 1)[0]])
        try:
            ctx.client.grant_acl(path=path, role=role, users=userid)
        except ProxmoxError as again:
            if "does not exist" in again.message:
                raise ProxmoxError(
                    f"Proxmox does not know {userid} even after a sync of the realm "
                    f"'{settings.PROXMOX_REALM}'; check that the realm's LDAP settings "
                    f"find the user ({again.message})"
                ) from again
            raise
    ctx.log(f"granted {role} on {path} to {userid}")


def proxmox_acl_revoke_all(ctx: JobContext, st: dict[str, Any]) -> str | None:
    """Remove every grant of the role on /vms/<vmid> to users of the realm (deletion)."""
    if (off := _proxmox_off(ctx)) is not None:
        return off
    c, role = ctx.container, settings.PROXMOX_VM_ROLE
    path = acl_path(c)
    granted = _granted(ctx, path, role)
    for userid in sorted(granted):
        ctx.client.grant_acl(path=path, role=role, users=userid, delete=True)
        ctx.log(f"revoked {role} on {path} from {userid}")
    if not granted:
        ctx.log(f"nobody holds {role} on {path}")
        return StepState.SKIPPED
    return None


def undo_create_access(ctx: JobContext) -> None:
    """After a failed create: remove the access group if this container made it (best effort)."""
    try:
        st = ctx.step("access_group")
    except KeyError:
        return
    if not st.get("group_dn"):
        return
    try:
        access_group_remove(ctx, {})
    except Exception as exc:  # the container is gone either way; say what is left
        ctx.log(
            f"could not remove the access group {st['group_dn']}: {exc}", level=LogLevel.WARNING
        )


@register
class AccessJob(JobKindBase):
    """Collaborators changed (or a re-sync was asked for): group, realm and grants follow."""

    name = JobKind.ACCESS
    verb = "Updating access to"
    steps = (
        ("access_group", "Update the directory access group"),
        ("realm_sync", "Sync the Proxmox LDAP realm (new users)"),
        ("proxmox_acl", "Update access in Proxmox"),
    )
    start_from = (ContainerStatus.RUNNING, ContainerStatus.STOPPED, ContainerStatus.ERROR)
    retry_from = start_from
    permission = "manage_access"

    def run(self, ctx: JobContext) -> dict[str, Any]:
        run_access_steps(ctx)
        return {"members": access_usernames(ctx.container)}

    def undo(self, ctx: JobContext) -> str:
        return (
            "the portal already shows the new collaborators; the directory and Proxmox may lag "
            "until the access change is run again"
        )


def run_access_steps(ctx: JobContext) -> None:
    """The three access steps, in order (the `access` and `mend` kinds)."""
    ctx.run_step("access_group", lambda st: access_group_sync(ctx, st))
    ctx.run_step("realm_sync", lambda st: realm_sync_step(ctx, st))
    ctx.run_step("proxmox_acl", lambda st: proxmox_acl_sync(ctx, st))
