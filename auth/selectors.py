"""Reads for identity: who may do what to a container, collaborators, tokens, quotas."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet

from portal.errors import NotFound, PermissionDenied

from .models import (
    ApiToken,
    AuditEntry,
    AuthenticatorDevice,
    Collaborator,
    RecoveryCode,
    RequestStatus,
    ResourceRequest,
    SshKey,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

    from containers.models import Container

Role = Literal["owner", "collaborator", "staff"]

# What each role may do to a container (item 3 of the identity issue).
CONTAINER_ACTIONS: dict[str, frozenset[str]] = {
    "view": frozenset({"owner", "collaborator", "staff"}),
    "open": frozenset({"owner", "collaborator", "staff"}),
    "start": frozenset({"owner", "collaborator", "staff"}),
    "stop": frozenset({"owner", "collaborator", "staff"}),
    "restart": frozenset({"owner", "collaborator", "staff"}),
    "resize": frozenset({"owner", "staff"}),
    "delete": frozenset({"owner", "staff"}),
    "extend": frozenset({"owner", "staff"}),
    "manage_access": frozenset({"owner", "staff"}),
    "manage_network": frozenset({"owner", "staff"}),
    "change_owner": frozenset({"staff"}),
    "mend": frozenset({"staff"}),
}


def visible_container_q(user: User | AnonymousUser) -> Q:
    """The containers a (non-staff, authenticated) user may see: owned or collaborated on."""
    # An uncorrelated IN: PostgreSQL hashes the user's few shared ids once, instead of
    # probing the collaborators per container as a correlated EXISTS would.
    shared = Collaborator.objects.filter(user_id=user.pk or 0).values("container_id")
    return Q(owner_id=user.pk) | Q(pk__in=shared)


def container_role(user: User | AnonymousUser | None, container: Container) -> Role | None:
    """The user's relation to a container: owner, staff, collaborator, or None (invisible)."""
    if user is None or not user.is_authenticated or not getattr(user, "is_active", True):
        return None
    if container.owner_id == user.pk:
        return "owner"
    if getattr(user, "is_staff", False):
        return "staff"
    if Collaborator.objects.filter(container=container, user=user).exists():
        return "collaborator"
    return None


def container_allows(user: User | AnonymousUser | None, container: Container, action: str) -> bool:
    role = container_role(user, container)
    return role is not None and role in CONTAINER_ACTIONS[action]


def require_container_permission(
    actor: User | AnonymousUser | None, container: Container, action: str
) -> None:
    """Raise NotFound if the actor cannot see the container, PermissionDenied if the role
    does not allow the action. `actor=None` is the system itself (commands, reconciliation)."""
    if actor is None:
        return
    role = container_role(actor, container)
    if role is None:
        raise NotFound(f"no container {container.hostname}")
    if role not in CONTAINER_ACTIONS[action]:
        verb = action.replace("_", " ")
        raise PermissionDenied(
            f"a collaborator may not {verb} {container.hostname}; ask its owner",
        )


def collaborators_of(container: Container) -> QuerySet[Collaborator]:
    return Collaborator.objects.filter(container=container).select_related("user")


def collaborator_usernames(container: Container) -> list[str]:
    return list(
        Collaborator.objects.filter(container=container)
        .order_by("user__username")
        .values_list("user__username", flat=True)
    )


def access_usernames(container: Container) -> list[str]:
    """Who may log into the container: its owner and collaborators."""
    return sorted({container.owner.get_username(), *collaborator_usernames(container)})


def tokens_of(user: User) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=user).order_by("-created_at")


def ssh_keys_of(user: User) -> QuerySet[SshKey]:
    return SshKey.objects.filter(user=user).order_by("created_at")


def ssh_keys_text(user: User) -> str:
    """A user's keys, one per line: what a new container gets when none are given."""
    return "\n".join(ssh_keys_of(user).values_list("key", flat=True))


def resource_requests_visible_to(
    user: User | AnonymousUser,
) -> QuerySet[ResourceRequest]:
    qs = ResourceRequest.objects.select_related("user", "container", "decided_by", "job")
    if getattr(user, "is_staff", False):
        return qs
    if not user.is_authenticated:
        return qs.none()
    return qs.filter(user=user)


def resource_request_get(user: User | AnonymousUser, pk: int | str) -> ResourceRequest:
    try:
        return resource_requests_visible_to(user).get(pk=pk)
    except (ResourceRequest.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"no resource request {pk}") from None


def audit_entries(*, action: str | None = None, actor: User | None = None) -> QuerySet[AuditEntry]:
    qs = AuditEntry.objects.select_related("actor")
    if action:
        qs = qs.filter(action=action)
    if actor is not None:
        qs = qs.filter(actor=actor)
    return qs


def require_staff(actor: User | None, what: str) -> None:
    """Raise PermissionDenied unless `actor` is staff; `what` completes "only staff may …"."""
    if actor is None or not getattr(actor, "is_staff", False):
        raise PermissionDenied(f"only staff may {what}")


def pending_request_count() -> int:
    """How many resource requests wait for staff (the navigation's badge): one COUNT."""
    return ResourceRequest.objects.filter(status=RequestStatus.PENDING).count()


# -- the profile pages ---------------------------------------------------------------------------
def active_user(pk: int) -> User | None:
    return get_user_model().objects.filter(pk=pk, is_active=True).first()


def recovery_codes_left(user: User) -> int:
    return RecoveryCode.objects.filter(device__user=user, used_at__isnull=True).count()


def unconfirmed_device(user: User) -> AuthenticatorDevice | None:
    """The authenticator being enrolled (the latest not yet confirmed)."""
    return AuthenticatorDevice.objects.filter(user=user, confirmed=False).order_by("-pk").first()


def own_ssh_key(user: User, pk: int) -> SshKey | None:
    return SshKey.objects.filter(pk=pk, user=user).first()


def own_token(user: User, pk: int) -> ApiToken | None:
    return ApiToken.objects.filter(pk=pk, user=user).first()


def own_resource_request(user: User, pk: int) -> ResourceRequest | None:
    return ResourceRequest.objects.filter(pk=pk, user=user).first()
