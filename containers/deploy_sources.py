"""A push's source: the commit's tree as a gzip'd tar, uploaded with the push and kept
until the worker has sent it into the container (LaunchPad, docs/launchpad.md).

The source comes from the runner's checkout through the portal, so a private repository
needs no credential in the container, nor in the portal: nothing is cloned. The archive
is checked before it is stored: a gzip'd tar of regular files, directories and links,
with relative names that stay inside the tree.
"""

from __future__ import annotations

import os
import secrets
import tarfile
from pathlib import Path, PurePosixPath
from typing import IO

from django.conf import settings

from portal.errors import ValidationFailed

CHUNK = 1024 * 1024
MAX_MEMBERS = 200_000


def source_dir() -> Path:
    directory = Path(settings.DEPLOY_SOURCE_DIR)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    return directory


def source_store(upload: IO[bytes], *, commit: str) -> str:
    """Check and keep an uploaded archive; its file name, for the deploy job's params."""
    limit = settings.DEPLOY_SOURCE_MAX_BYTES
    name = f"{commit}-{secrets.token_hex(8)}.tar.gz"
    path = source_dir() / name
    size = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := upload.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise ValidationFailed(
                        f"the source archive is larger than {limit // (1024 * 1024)} MiB",
                        field="source",
                    )
                out.write(chunk)
        _check_archive(path)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return name


def source_path(name: str) -> Path:
    """The stored archive `name` (as source_store gave it; never a path from outside)."""
    if "/" in name or name.startswith(".") or not name.endswith(".tar.gz"):
        raise ValidationFailed("not a stored source archive", field="source")
    return source_dir() / name


def source_discard(name: str) -> None:
    if name:
        source_path(name).unlink(missing_ok=True)


def _check_archive(path: Path) -> None:
    try:
        with tarfile.open(path, mode="r:gz") as archive:
            for count, member in enumerate(archive, start=1):
                if count > MAX_MEMBERS:
                    raise ValidationFailed(
                        f"the source archive has more than {MAX_MEMBERS} entries", field="source"
                    )
                problem = _member_problem(member)
                if problem:
                    raise ValidationFailed(
                        f"the source archive's entry {member.name!r} {problem}", field="source"
                    )
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ValidationFailed(
            f"the source is not a gzip'd tar archive (git archive --format=tar.gz): {exc}",
            field="source",
        ) from exc


def _member_problem(member: tarfile.TarInfo) -> str:
    if member.type in (tarfile.XGLTYPE, tarfile.XHDTYPE):
        return ""  # pax headers (git archive writes the commit id in one)
    name = PurePosixPath(member.name)
    if name.is_absolute() or ".." in name.parts:
        return "leaves the source tree"
    if not (member.isfile() or member.isdir() or member.issym()):
        return "is not a file, a directory or a symbolic link"
    # A link's target is the container's business: it resolves there, in the owner's
    # own system, and tar extracts no member through a link it made (GNU tar's default).
    return ""
