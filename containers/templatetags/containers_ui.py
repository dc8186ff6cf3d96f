"""Template helpers for the container pages."""

from __future__ import annotations

from typing import Any

from django import template

from containers.models import Container

register = template.Library()


@register.simple_tag
def ssh_command(container: Container, viewer: Any) -> str:
    """The SSH command as the viewer would type it.

    Owners and collaborators log in as themselves (SSSD lets the container's access group
    in); staff looking at someone else's container see the owner's login.
    """
    username = viewer.get_username() if viewer is not None else ""
    if not username or (getattr(viewer, "is_staff", False) and container.owner_id != viewer.pk):
        username = container.owner.get_username()
    return container.ssh_command_for(username)
