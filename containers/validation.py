"""What a new or resized container may ask for, checked whole.

Every check here reads only; none allocates. A create's input is checked field by
field and all the errors are raised together (portal.errors.FieldErrors), so the GUI
form and the API answer every mistake at once. Field names are the API's and the
form's (`memory_mib`, not `memory`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError

from auth.selectors import ssh_keys_text
from auth.sshkeys import parse_keys
from networking.models import RouteAccess, Site
from networking.validators import validate_hostname
from portal.errors import ErrorCode, FieldErrors, ValidationFailed

from .models import (
    LIVE,
    MAX_CORES,
    MAX_DISK_GIB,
    MIN_DISK_GIB,
    MIN_MEMORY_MIB,
    Container,
    Template,
)
from .resources import Resources

if TYPE_CHECKING:
    from django.contrib.auth.models import User

HOSTNAME_MAX = 63  # one DNS label


@dataclass(frozen=True)
class CreateInput:
    """A create's input once every check passed."""

    hostname: str
    resources: Resources
    ssh_public_keys: str
    route_access: str


# field -> (the name in messages, unit)
_WORDS = {
    "cores": ("cores", ""),
    "memory_mib": ("memory", " MiB"),
    "swap_mib": ("swap", " MiB"),
    "disk_gib": ("disk", " GiB"),
}


def resource_limits(template: Template) -> dict[str, tuple[int, int]]:
    """The lowest and highest value of each resource a container of `template` may have
    (what the checks below enforce, and what the forms' number inputs offer)."""
    return {
        "cores": (1, min(template.max_cores, MAX_CORES)),
        "memory_mib": (MIN_MEMORY_MIB, template.max_memory_mib),
        "swap_mib": (0, template.max_swap_mib),
        "disk_gib": (MIN_DISK_GIB, min(template.max_disk_gib, MAX_DISK_GIB)),
    }


def normalise_hostname(value: str) -> str:
    """Hostnames are DNS labels; ASCII letters are folded to lower case, nothing else changes."""
    value = value or ""
    if value.isascii():
        value = value.lower()
    if len(value) > HOSTNAME_MAX:
        # Said outright, never cut: a shorter name would be another name.
        raise ValidationFailed(
            f"hostname: {len(value)} characters is too long; a hostname has at most {HOSTNAME_MAX}",
            code=ErrorCode.INVALID_HOSTNAME,
            field="hostname",
        )
    try:
        validate_hostname(value)
    except ValidationError as exc:
        raise ValidationFailed(
            f"hostname: {exc.messages[0]}", code=ErrorCode.INVALID_HOSTNAME, field="hostname"
        ) from exc
    return value


def check_resources(template: Template, res: Resources) -> None:
    """Raise ValidationFailed naming every resource outside the template's limits."""
    errors = FieldErrors()
    for field, (low, high) in resource_limits(template).items():
        value = getattr(res, field)
        name, unit = _WORDS[field]
        if not isinstance(value, int) or isinstance(value, bool):
            errors.add(
                f"{name} must be a whole number", code=ErrorCode.INVALID_RESOURCES, field=field
            )
        elif value < low or value > high:
            errors.add(
                f"{name} {value}{unit} is outside {low}-{high}{unit} allowed for template "
                f"{template.name}",
                code=ErrorCode.INVALID_RESOURCES,
                field=field,
            )
    errors.raise_if_any()


def resolve_resources(
    template: Template,
    *,
    cores: int | None,
    memory_mib: int | None,
    swap_mib: int | None,
    disk_gib: int | None,
) -> Resources:
    res = Resources.defaults(template).replaced(
        cores=cores, memory_mib=memory_mib, swap_mib=swap_mib, disk_gib=disk_gib
    )
    check_resources(template, res)
    return res


def container_create_check(
    *,
    owner: User,
    hostname: str,
    template: Template | None,
    site: Site | None,
    cores: int | None = None,
    memory_mib: int | None = None,
    swap_mib: int | None = None,
    disk_gib: int | None = None,
    ssh_public_keys: str = "",
    route_access: str = RouteAccess.USERS,
) -> CreateInput:
    """Check a create's whole input; raise ValidationFailed with every field's error.

    Without a template (the caller could not find the one named, and says so itself)
    what does not depend on it is still checked. Whether the name is free is decided
    under the site's lock (container_create); it is looked up here too, without the
    lock, only to report it along with other errors.
    """
    errors = FieldErrors()
    name = ""
    with errors.collect():
        name = normalise_hostname(hostname)
    res: Resources | None = None
    if template is not None:
        if site is not None and template.site_id != site.pk:
            errors.add(f"template {template.name} belongs to another site", field="template")
        elif not template.enabled:
            errors.add(f"template {template.name} is not offered any more", field="template")
        with errors.collect():
            res = resolve_resources(
                template, cores=cores, memory_mib=memory_mib, swap_mib=swap_mib, disk_gib=disk_gib
            )
    keys: list[str] = []
    with errors.collect():
        keys = parse_keys(ssh_public_keys or ssh_keys_text(owner))
    if route_access not in RouteAccess.values:
        errors.add(f"route_access is one of {', '.join(RouteAccess.values)}", field="route_access")
    if template is None:
        errors.add("a container needs a template", field="template")
    elif errors and name and hostname_taken(on := site or template.site, name):
        errors.add(f"hostname '{name}' is already taken on {on.name}", field="hostname")
    errors.raise_if_any()
    assert res is not None
    return CreateInput(
        hostname=name, resources=res, ssh_public_keys="\n".join(keys), route_access=route_access
    )


def hostname_taken(site: Site | None, name: str) -> bool:
    """Whether a live container holds `name` (on `site`, or on any site)."""
    taken = Container.objects.filter(LIVE, hostname=name)
    if site is not None:
        taken = taken.filter(site=site)
    return taken.exists()
