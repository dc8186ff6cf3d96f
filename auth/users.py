"""Users the portal may give access to, and what Proxmox's realm sync knew of them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from portal.errors import ErrorCode, NotFound, ValidationFailed

from .models import RealmSync

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from networking.models import Site


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
            f"no user named '{name}' can be given access",
            code=ErrorCode.USER_NOT_FOUND,
            field="username",
        )
    return user


def realm_sync_record(*, users: list[User], site: Site, realm: str) -> None:
    """Note that the site's Proxmox cluster synced its realm knowing these users."""
    now = timezone.now()
    for user in users:
        RealmSync.objects.update_or_create(
            user=user, site=site, realm=realm, defaults={"synced_at": now}
        )
