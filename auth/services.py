"""Every identity write: collaborators, SSH keys and API tokens (2FA and logins:
auth/logins.py; quota decisions and resource requests: auth/quota_decisions.py).

Keyword-only, typed, atomic, domain errors only; each important write records one
audit entry here, where it is made.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import secrets
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from portal.errors import (
    Conflict,
    InvalidState,
    NotFound,
    ValidationFailed,
)

from .audit import audit_record
from .models import (
    ApiToken,
    Collaborator,
    RealmSync,
    SshKey,
    TokenScope,
)
from .selectors import require_container_permission
from .sshkeys import MAX_KEYS, parse_key

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from containers.models import Container, Job
    from networking.models import Site

log = logging.getLogger(__name__)

TOKEN_PREFIX = "cpt"
TOKEN_EXPIRY_DAYS = (7, 30, 90, 365, None)  # None: never


# -- users ---------------------------------------------------------------------------------
def user_by_username(username: str) -> User:
    """An active user who may be given access, by name.

    With a directory configured, only people it has qualify (a local break-glass account
    does not); one it has but the portal has not seen yet is created from it. Every name
    that does not qualify (unknown, disabled, local only) gets the same NotFound, so that
    the answer tells no more than the directory shows. A directory that is down gives the
    same DirectoryUnavailable for every name.
    """
    name = (username or "").strip()
    if not name:
        raise ValidationFailed("give a username", field="username")
    model = get_user_model()
    user = model.objects.filter(username__iexact=name).first()
    if settings.AUTH_LDAP_SERVER_URI:
        from .backends import PortalLDAPBackend
        from .directory import get_directory

        directory = get_directory()
        uid = user.get_username() if user is not None else name
        if directory is None or directory.user_dn(uid) is None:  # raises when it is down
            user = None
        elif user is None:
            user = PortalLDAPBackend().populate_user(uid)
    if user is None or not user.is_active:
        raise NotFound(
            f"no user named '{name}' can be given access", code="user_not_found", field="username"
        )
    return user


# -- collaborators -------------------------------------------------------------------------
def _require_access_change(container: Container) -> None:
    """What does not depend on the name is checked before the name is looked up."""
    from containers.models import ACTIVE_JOB_STATUSES, ContainerStatus

    if container.status not in (
        ContainerStatus.RUNNING,
        ContainerStatus.STOPPED,
        ContainerStatus.ERROR,
    ):
        raise InvalidState(
            f"cannot change who may use {container.hostname} while it is {container.status}",
            code="invalid_state",
        )
    active = container.jobs.filter(status__in=ACTIVE_JOB_STATUSES).first()
    if active is not None:
        raise Conflict(
            f"{container.hostname} already has a {active.kind} job ({active.id}) in progress; "
            "wait for it to finish",
            code="job_in_progress",
        )


def _access_job(container: Container, actor: User | None, params: dict[str, Any]) -> Job:
    from containers.models import JobKind
    from containers.services import job_create

    _require_access_change(container)
    return job_create(kind=JobKind.ACCESS, container=container, actor=actor, params=params)


def collaborator_add(*, container: Container, username: str, actor: User | None) -> Job:
    """Let a user see, start, stop and open the container; the access job updates the
    directory group and the Proxmox ACL."""
    require_container_permission(actor, container, "manage_access")
    _require_access_change(container)
    try:
        user = user_by_username(username)
    except NotFound:
        audit_record(
            actor=actor,
            action="collaborator.add_refused",
            obj=container,
            summary=f"could not add '{(username or '').strip()[:100]}' as a collaborator",
        )
        raise
    if user.pk == container.owner_id:
        raise ValidationFailed(
            f"{user.username} owns {container.hostname} already", code="is_owner", field="username"
        )
    try:
        with transaction.atomic():
            Collaborator.objects.create(container=container, user=user, added_by=actor)
            job = _access_job(container, actor, {"added": [user.username]})
            audit_record(
                actor=actor,
                action="collaborator.add",
                obj=container,
                summary=f"added {user.username} as a collaborator",
                changes={"collaborator": user.username, "job": str(job.pk)},
            )
    except IntegrityError as exc:
        raise Conflict(
            f"{user.username} is already a collaborator on {container.hostname}",
            code="already_collaborator",
            field="username",
        ) from exc
    return job


def collaborator_remove(*, container: Container, username: str, actor: User | None) -> Job:
    """Take a collaborator's access away: at once in the portal, then in the directory and
    on Proxmox through the access job."""
    require_container_permission(actor, container, "manage_access")
    with transaction.atomic():
        row = (
            Collaborator.objects.select_related("user")
            .filter(container=container, user__username__iexact=(username or "").strip())
            .first()
        )
        if row is None:
            raise NotFound(
                f"{username} is not a collaborator on {container.hostname}",
                code="not_collaborator",
                field="username",
            )
        name = row.user.username
        row.delete()
        job = _access_job(container, actor, {"removed": [name]})
        audit_record(
            actor=actor,
            action="collaborator.remove",
            obj=container,
            summary=f"removed collaborator {name}",
            changes={"collaborator": name, "job": str(job.pk)},
        )
    return job


def container_access_sync(*, container: Container, actor: User | None) -> Job:
    """Make the directory group and the Proxmox ACLs match the portal again (re-run)."""
    require_container_permission(actor, container, "manage_access")
    with transaction.atomic():
        job = _access_job(container, actor, {"resync": True})
        audit_record(
            actor=actor,
            action="container.access_sync",
            obj=container,
            summary="asked for the access group and Proxmox ACLs to be synced",
            changes={"job": str(job.pk)},
        )
    return job


def realm_sync_record(*, users: list[User], site: Site, realm: str) -> None:
    """Note that the site's Proxmox cluster synced its realm knowing these users."""
    now = timezone.now()
    for user in users:
        RealmSync.objects.update_or_create(
            user=user, site=site, realm=realm, defaults={"synced_at": now}
        )


# -- SSH keys --------------------------------------------------------------------------------
def ssh_fingerprint(key: str) -> str:
    """OpenSSH's SHA256 fingerprint (base64, no padding) of a normalised key."""
    blob = key.split()[1]
    try:
        raw = base64.b64decode(blob, validate=True)
    except binascii.Error as exc:  # parse_key has already checked; belt and braces
        raise ValidationFailed("the SSH key's data is not valid base64", field="key") from exc
    return base64.b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")


def ssh_key_add(*, user: User, key: str, name: str = "", actor: User | None = None) -> SshKey:
    """Keep a public key in the user's profile (checked; wrong keys get a clear message)."""
    if "\n" in (key or "").strip():
        raise ValidationFailed("add one key at a time", field="key")
    normalised = parse_key(key)
    fingerprint = ssh_fingerprint(normalised)
    name = " ".join((name or "").split())[:100] or (normalised.split(None, 2)[2:] or [""])[0][:100]
    with transaction.atomic():
        if SshKey.objects.filter(user=user).count() >= MAX_KEYS:
            raise ValidationFailed(f"at most {MAX_KEYS} SSH keys", field="key")
        try:
            with transaction.atomic():
                row = SshKey.objects.create(
                    user=user, name=name, key=normalised, fingerprint=fingerprint
                )
        except IntegrityError as exc:
            raise Conflict(
                f"this key (SHA256:{fingerprint}) is already in the profile",
                code="duplicate_key",
                field="key",
            ) from exc
        audit_record(
            actor=actor or user,
            action="sshkey.add",
            obj=row,
            summary=f"added SSH key SHA256:{fingerprint} for {user.get_username()}",
            changes={"user": user.get_username(), "fingerprint": fingerprint},
        )
        _enqueue_ssh_sync(user)
    return row


def ssh_key_remove(*, key: SshKey, actor: User) -> None:
    if key.user_id != actor.pk and not getattr(actor, "is_staff", False):
        raise NotFound("no such SSH key")
    with transaction.atomic():
        user = key.user
        audit_record(
            actor=actor,
            action="sshkey.remove",
            obj=key,
            summary=f"removed SSH key SHA256:{key.fingerprint} of {user.get_username()}",
            changes={"user": user.get_username(), "fingerprint": key.fingerprint},
        )
        key.delete()
        _enqueue_ssh_sync(user)


def _enqueue_ssh_sync(user: User) -> None:
    if not settings.AUTH_LDAP_SERVER_URI or not settings.LDAP_SSH_KEYS:
        return
    user_id = user.pk

    def send() -> None:
        from .tasks import sync_ssh_keys

        sync_ssh_keys.apply_async(args=(user_id,))

    transaction.on_commit(send)


def ssh_keys_to_directory(*, user: User) -> str:
    """Write the user's keys to the directory's sshPublicKey attribute, where the schema has
    it. Returns what happened, in words; raises DirectoryUnavailable to be retried."""
    from .directory import get_directory

    directory = get_directory()
    if directory is None:
        return "no directory is configured"
    if not directory.supports_ssh_keys():
        return "the directory's schema has no sshPublicKey (openssh-lpk); keys stay in the portal"
    keys = list(
        SshKey.objects.filter(user=user).order_by("created_at").values_list("key", flat=True)
    )
    done = directory.ssh_keys_set(user.get_username(), keys)
    if done is None:
        return f"{user.get_username()} has no directory entry"
    return f"wrote {len(keys)} SSH key(s) for {user.get_username()}"


# -- API tokens ------------------------------------------------------------------------------
def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_create(
    *,
    user: User,
    name: str,
    scope: str = TokenScope.READ,
    expires_in_days: int | None = 90,
    actor: User | None = None,
) -> tuple[ApiToken, str]:
    """Make a token; the returned text is the only time it is ever shown."""
    actor = actor or user
    if actor.pk != user.pk and not getattr(actor, "is_staff", False):
        raise NotFound("no such user")
    name = " ".join((name or "").split())
    if not name or len(name) > 100:
        raise ValidationFailed("a token needs a name of 1-100 characters", field="name")
    if scope not in TokenScope.values:
        raise ValidationFailed("scope is read or write", field="scope")
    if expires_in_days not in TOKEN_EXPIRY_DAYS:
        raise ValidationFailed("expiry is 7, 30, 90 or 365 days, or never", field="expires_in_days")
    if not user.is_active:
        raise InvalidState("the account is disabled")
    with transaction.atomic():
        live = ApiToken.objects.filter(user=user, revoked_at__isnull=True)
        if live.count() >= settings.API_TOKEN_MAX_PER_USER:
            raise ValidationFailed(
                f"at most {settings.API_TOKEN_MAX_PER_USER} tokens; revoke some first",
                field="name",
            )
        for _ in range(5):
            prefix = secrets.token_hex(4)
            if not ApiToken.objects.filter(prefix=prefix).exists():
                break
        secret = secrets.token_urlsafe(32)
        plain = f"{TOKEN_PREFIX}_{prefix}_{secret}"
        expires_at = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
        token = ApiToken.objects.create(
            user=user,
            name=name,
            prefix=prefix,
            token_hash=token_hash(plain),
            scope=scope,
            expires_at=expires_at,
        )
        audit_record(
            actor=actor,
            action="token.create",
            obj=token,
            summary=f"created {scope} token '{name}' ({prefix}…) for {user.get_username()}, "
            + (f"expires in {expires_in_days} days" if expires_in_days else "never expires"),
            changes={"scope": scope, "expires_in_days": expires_in_days, "prefix": prefix},
        )
    return token, plain


def token_revoke(*, token: ApiToken, actor: User) -> ApiToken:
    if token.user_id != actor.pk and not getattr(actor, "is_staff", False):
        raise NotFound("no such token")
    with transaction.atomic():
        updated = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        token.refresh_from_db()
        if updated:
            audit_record(
                actor=actor,
                action="token.revoke",
                obj=token,
                summary=f"revoked token '{token.name}' ({token.prefix}…) of {token.user.get_username()}",
                changes={"prefix": token.prefix},
            )
    return token


class TokenInvalid(Exception):
    """Why a bearer token was refused (the message is safe to show)."""


def token_authenticate(raw: str, *, address: str | None) -> ApiToken:
    """The token a bearer value names, if it is valid; records its last use."""
    parts = (raw or "").strip().split("_", 2)  # the secret itself may contain "_"
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not parts[1] or not parts[2]:
        raise TokenInvalid("malformed token")
    token = ApiToken.objects.select_related("user").filter(prefix=parts[1]).first()
    expected = token.token_hash if token else token_hash("x")
    if not hmac.compare_digest(expected, token_hash(raw.strip())) or token is None:
        raise TokenInvalid("invalid token")
    if token.revoked_at is not None:
        raise TokenInvalid("this token was revoked")
    if token.is_expired:
        raise TokenInvalid("this token has expired")
    if not token.user.is_active:
        raise TokenInvalid("the token's user is disabled")
    now = timezone.now()
    interval = timedelta(seconds=settings.API_TOKEN_LAST_USED_INTERVAL)
    if (
        token.last_used_at is None
        or now - token.last_used_at >= interval
        or (address and token.last_used_ip != address)
    ):
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now, last_used_ip=address)
        token.last_used_at, token.last_used_ip = now, address
    return token
