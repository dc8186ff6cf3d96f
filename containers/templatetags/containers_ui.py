"""Template helpers for the container pages."""

from __future__ import annotations

from typing import Any

from django import template

from containers import deployment_selectors
from containers.models import Container, Deployment

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


@register.filter
def deployment_url(deployment: Deployment) -> str:
    """The app's address while its container lives, else ""."""
    return deployment_selectors.deployment_url(deployment)


@register.filter
def pull_request(deployment: Deployment) -> int | None:
    """The pull request's number when the deployment is of one (ref `pr-<n>`)."""
    return deployment_selectors.pull_request_number(deployment)
