"""Every identity write: collaborators, SSH keys, API tokens, quota decisions (2FA and
logins: auth/logins.py).

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
    QUOTA_FIELDS,
    QUOTA_VALUE_MAX,
    ApiToken,
    Collaborator,
    QuotaOverride,
    RealmSync,
    RequestKind,
    RequestStatus,
    ResourceRequest,
    SshKey,
    TokenScope,
)
from .selectors import require_container_permission, require_staff
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


# -- quotas and resource requests ----------------------------------------------------------------
def quota_override_create(
    *,
    user: User,
    actor: User | None,
    reason: str,
    expires_at: Any = None,
    limits: dict[str, int],
    request: ResourceRequest | None = None,
) -> QuotaOverride:
    """Give one user more quota (the limits named; the rest unchanged)."""
    require_staff(actor, "grant quota")
    unknown = set(limits) - set(QUOTA_FIELDS)
    if unknown or not limits:
        raise ValidationFailed(
            f"name at least one limit of {', '.join(QUOTA_FIELDS)}", field="limits"
        )
    for field, value in limits.items():
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or not 0 <= value <= QUOTA_VALUE_MAX
        ):
            raise ValidationFailed(
                f"{field} must be a whole number from 0 to {QUOTA_VALUE_MAX}", field=field
            )
    with transaction.atomic():
        override = QuotaOverride.objects.create(
            user=user, reason=reason[:500], granted_by=actor, expires_at=expires_at, **limits
        )
        audit_record(
            actor=actor,
            action="quota.override",
            obj=override,
            summary=f"granted {user.get_username()} "
            + ", ".join(f"{k}={v}" for k, v in sorted(limits.items()))
            + (f" (request #{request.pk})" if request else ""),
            changes={"user": user.get_username(), **limits},
        )
    return override


def resource_request_create(
    *,
    user: User,
    kind: str,
    reason: str,
    container: Container | None = None,
    limits: dict[str, int] | None = None,
    cores: int | None = None,
    memory_mib: int | None = None,
    swap_mib: int | None = None,
    disk_gib: int | None = None,
) -> ResourceRequest:
    """Ask staff for more quota, or for one container to grow, with a reason."""
    reason = (reason or "").strip()
    if len(reason) < 10:
        raise ValidationFailed("say in a sentence why you need it", field="reason")
    if kind not in RequestKind.values:
        raise ValidationFailed("kind is quota or resize", field="kind")
    if kind == RequestKind.RESIZE:
        if container is None:
            raise ValidationFailed("a resize request names its container", field="container")
        require_container_permission(user, container, "resize")
        wanted = {
            "cores": cores,
            "memory_mib": memory_mib,
            "swap_mib": swap_mib,
            "disk_gib": disk_gib,
        }
        if all(v is None for v in wanted.values()):
            raise ValidationFailed("ask for more cores, memory, swap or disk", field="cores")
        if disk_gib is not None and disk_gib < container.disk_gib:
            raise ValidationFailed("disks only grow", field="disk_gib")
        limits = {}
    else:
        container, cores, memory_mib, swap_mib, disk_gib = None, None, None, None, None
        limits = dict(limits or {})
    row = ResourceRequest(
        user=user,
        kind=kind,
        container=container,
        limits=limits,
        cores=cores,
        memory_mib=memory_mib,
        swap_mib=swap_mib,
        disk_gib=disk_gib,
        reason=reason[:5000],
    )
    from django.core.exceptions import ValidationError

    try:
        row.full_clean()
    except ValidationError as exc:
        raise ValidationFailed("; ".join(exc.messages)) from exc
    with transaction.atomic():
        if ResourceRequest.objects.filter(
            user=user, status=RequestStatus.PENDING, kind=kind, container=container
        ).exists():
            raise Conflict(
                "a request like this is already waiting for staff", code="request_pending"
            )
        row.save(force_insert=True)
        audit_record(
            actor=user,
            action="resource_request.create",
            obj=row,
            summary=f"asked for {_describe(row)}",
            changes={
                "kind": kind,
                "limits": limits,
                **{k: v for k, v in _size(row).items() if v is not None},
            },
        )
    return row


def _size(row: ResourceRequest) -> dict[str, int | None]:
    return {
        "cores": row.cores,
        "memory_mib": row.memory_mib,
        "swap_mib": row.swap_mib,
        "disk_gib": row.disk_gib,
    }


def _describe(row: ResourceRequest) -> str:
    if row.kind == RequestKind.QUOTA:
        return "quota " + ", ".join(f"{k}={v}" for k, v in sorted(row.limits.items()))
    size = ", ".join(f"{k}={v}" for k, v in _size(row).items() if v is not None)
    return f"{row.container.hostname if row.container else 'a container'} with {size}"


def _decide(request: ResourceRequest, status: str, actor: User, note: str) -> None:
    updated = ResourceRequest.objects.filter(pk=request.pk, status=RequestStatus.PENDING).update(
        status=status, decided_by=actor, decided_at=timezone.now(), decision_note=note[:500]
    )
    if not updated:
        request.refresh_from_db()
        raise InvalidState(f"this request was already {request.status}", code="invalid_state")
    request.refresh_from_db()


def resource_request_approve(
    *, request: ResourceRequest, actor: User, note: str = ""
) -> ResourceRequest:
    """Approve and apply: a quota override, and for a resize also the resize job."""
    from containers.services import container_resize

    from .quotas import effective_limits, usage_for

    require_staff(actor, "decide resource requests")
    with transaction.atomic():
        _decide(request, RequestStatus.APPROVED, actor, note)
        user = request.user
        outcome: list[str] = []
        if request.kind == RequestKind.QUOTA:
            override = quota_override_create(
                user=user,
                actor=actor,
                reason=f"resource request #{request.pk}: {request.reason}",
                limits={k: int(v) for k, v in request.limits.items()},
                request=request,
            )
            request.override = override
            outcome.append(f"your quota now allows {_describe(request).removeprefix('quota ')}")
        else:
            c = request.container
            if c is None or not c.is_live:
                raise InvalidState("the container of this request is gone", code="invalid_state")
            new = {
                "cores": request.cores or c.cores,
                "memory_mib": request.memory_mib or c.memory_mib,
                "swap_mib": c.swap_mib if request.swap_mib is None else request.swap_mib,
                "disk_gib": request.disk_gib or c.disk_gib,
            }
            usage, sizes = usage_for(c.owner)
            limits = effective_limits(c.owner)
            old = sizes.get(c.pk)
            raise_to: dict[str, int] = {}
            for measure, total_f, one_f in (
                ("cores", "max_cores", "max_container_cores"),
                ("memory_mib", "max_memory_mib", "max_container_memory_mib"),
                ("swap_mib", "max_swap_mib", "max_container_swap_mib"),
                ("disk_gib", "max_disk_gib", "max_container_disk_gib"),
            ):
                value = new[measure]
                before = getattr(old, measure) if old else 0
                total = getattr(usage, measure) - before + value
                if limits[total_f].value is not None and total > limits[total_f].value:
                    raise_to[total_f] = total
                if limits[one_f].value is not None and value > limits[one_f].value:  # type: ignore[operator]
                    raise_to[one_f] = value
            if raise_to:
                request.override = quota_override_create(
                    user=c.owner,
                    actor=actor,
                    reason=f"resource request #{request.pk}: {request.reason}",
                    limits=raise_to,
                    request=request,
                )
                outcome.append(f"quota override #{request.override.pk}")
            job = container_resize(container=c, actor=actor, **new)
            request.job = job
            outcome.append(f"resize job {job.pk} queued for {c.hostname}")
        request.outcome = ("approved: " + "; ".join(outcome))[:500]
        request.save(update_fields=["override", "job", "outcome"])
        audit_record(
            actor=actor,
            action="resource_request.approve",
            obj=request,
            summary=f"approved #{request.pk} of {user.get_username()} ({_describe(request)})",
            changes={"note": note, "outcome": request.outcome},
        )
    return request


def resource_request_deny(
    *, request: ResourceRequest, actor: User, note: str = ""
) -> ResourceRequest:
    require_staff(actor, "decide resource requests")
    with transaction.atomic():
        _decide(request, RequestStatus.DENIED, actor, note)
        request.outcome = ("denied" + (f": {note}" if note else ""))[:500]
        request.save(update_fields=["outcome"])
        audit_record(
            actor=actor,
            action="resource_request.deny",
            obj=request,
            summary=f"denied #{request.pk} of {request.user.get_username()} ({_describe(request)})",
            changes={"note": note},
        )
    return request


def resource_request_cancel(*, request: ResourceRequest, actor: User) -> ResourceRequest:
    if request.user_id != actor.pk:
        raise NotFound(f"no resource request {request.pk}")
    with transaction.atomic():
        _decide(request, RequestStatus.CANCELLED, actor, "")
        request.outcome = "cancelled by its author"
        request.save(update_fields=["outcome"])
        audit_record(
            actor=actor,
            action="resource_request.cancel",
            obj=request,
            summary=f"cancelled #{request.pk}",
        )
    return request
