"""The container name of a deployment (LaunchPad, issue #15).

The previous system's rule, kept so its users keep their URLs: `<owner>-<repo>-<branch>`
from the GitHub repository's owner and name and the branch, lower-cased, every character
other than a-z, 0-9 and `-` turned into `-`; a name over 63 characters is cut to 54 and
given `-` and the first 8 hex digits of the SHA-256 of the whole name. A pull request is
`<owner>-<repo>-pr-<number>`: the base repository's owner, so a fork's branch cannot take
an upstream branch's name.

One addition: the old rule could give a name that is not a valid hostname (a hyphen at
either end, a reserved name, all digits, `--` where IDNA reserves it). Such a name is
cleaned (runs of hyphens made one, none at the ends) and given the hash suffix, so it
stays unique to its repository and branch.
"""

from __future__ import annotations

import hashlib
import re

from django.core.exceptions import ValidationError

from networking.validators import validate_hostname
from portal.errors import ValidationFailed

MAX_LENGTH = 63
_CUT = 54  # 54 + "-" + 8 hex digits = 63
_OTHER = re.compile(r"[^a-z0-9-]")
_PR = re.compile(r"^pr-([1-9][0-9]{0,9})$")


def pull_request_ref(number: int) -> str:
    """The ref a pull request's deployment is keyed by (and named after)."""
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        raise ValidationFailed("a pull request number is a positive integer", field="pull_request")
    return f"pr-{number}"


def deployment_name(repository: str, ref: str) -> str:
    """The hostname of the deployment of `ref` (a branch, or `pr-<n>`) of `owner/name`."""
    owner, name = split_repository(repository)
    if not ref or len(ref) > 255:
        raise ValidationFailed("a branch name has 1 to 255 characters", field="branch")
    raw = _OTHER.sub("-", f"{owner}-{name}-{ref}".lower())
    digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
    old = raw if len(raw) <= MAX_LENGTH else f"{raw[:_CUT]}-{digest}"
    if _valid(old):
        return old
    head = re.sub(r"-{2,}", "-", raw[:_CUT]).strip("-") or "deploy"
    return f"{head}-{digest}"


def is_pull_request(ref: str) -> bool:
    return bool(_PR.fullmatch(ref))


def pull_request_number(ref: str) -> int | None:
    found = _PR.fullmatch(ref)
    return int(found.group(1)) if found else None


def split_repository(repository: str) -> tuple[str, str]:
    """`owner/name` as GitHub spells it (letters, digits, `-`, `_`, `.`), checked."""
    owner, sep, name = (repository or "").partition("/")
    ok = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
    if not sep or not ok.fullmatch(owner) or not ok.fullmatch(name):
        raise ValidationFailed(
            "the repository is owner/name, as GitHub spells it", field="repository"
        )
    return owner, name


def _valid(name: str) -> bool:
    try:
        validate_hostname(name)
    except ValidationError:
        return False
    return True
