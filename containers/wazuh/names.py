"""Names on the Wazuh side: agents and groups (pure; no database, no network).

An agent's name is `<site slug>-<vmid>-<container id>`, e.g. `lyon-1001-42`:

- the container's primary key is never reused (PostgreSQL sequences, SQLite's
  AUTOINCREMENT), so a container that reuses a deleted one's hostname or VMID gets a
  new name and never collides with a stale agent still registered on the manager
  (Wazuh refuses, or with `<force>` replaces, an enrolment under a taken name);
- the site slug keeps names apart when several sites share one manager;
- the VMID is there for the operator reading the Wazuh dashboard.

The name is what the container enrols with and what the portal looks agents up by
(`GET /agents?name=`); the portal's own `WazuhAgent` row keeps the mapping, so nothing
ever parses a name back, and no agent is recognised by a name pattern.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError

from portal.errors import ErrorCode

if TYPE_CHECKING:
    from containers.models import Container

# Wazuh's own rules (authd, the API's `names` and `group_names` formats).
AGENT_NAME_RE = re.compile(r"[A-Za-z0-9._-]{2,128}")
GROUP_NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,128}")
DEFAULT_GROUP = "default"


def agent_name(*, site_slug: str, vmid: int, container_id: int) -> str:
    name = f"{site_slug}-{vmid}-{container_id}"
    if not AGENT_NAME_RE.fullmatch(name):  # a slug is [a-z0-9-]{1,32}: cannot happen
        raise ValueError(f"not a Wazuh agent name: {name!r}")
    return name


def agent_name_for(container: Container) -> str:
    """The Wazuh agent name of a saved container (see the module's docstring for why)."""
    if container.pk is None:
        raise ValueError("a container has an agent name once it is saved")
    return agent_name(site_slug=container.site.slug, vmid=container.vmid, container_id=container.pk)


def split_groups(value: str) -> list[str]:
    """`"web, linux"` -> `["web", "linux"]` (Wazuh takes several groups comma-separated)."""
    return [g.strip() for g in value.split(",") if g.strip()]


def validate_wazuh_groups(value: str) -> None:
    """One or more Wazuh group names, comma-separated (empty is allowed by the fields that
    mean "the default" with it)."""
    for group in split_groups(value or ""):
        if not GROUP_NAME_RE.fullmatch(group) or group in (".", ".."):
            raise ValidationError(
                f"{group!r} is not a Wazuh group name (letters, digits, '.', '_', '-'; "
                "at most 128)",
                code=ErrorCode.INVALID_WAZUH_GROUP,
            )
