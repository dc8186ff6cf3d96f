"""What `portalctl deploy` learns from a local git checkout: the repository's GitHub name,
the branch, the commit and its time, and the commit's tree as the archive the portal takes.

Only the commit is deployed, never the working tree: `git archive` of the commit, run at
the top of the checkout (from a subdirectory git would archive only that subdirectory).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import CliError, Exit

# https://github.com/o/n(.git), http://user:token@github.com/o/n, git://github.com/o/n,
# ssh://git@github.com(:22)/o/n(.git): a scheme, the host, then owner/name.
_URL_FORM = re.compile(
    r"^(?:https?|git|ssh|git\+ssh)://(?:[^@/]+@)?(?:www\.)?github\.com(?::\d+)?/"
    r"(?P<owner>[^/]+)/(?P<name>[^/]+?)(?:\.git)?/?$",
    re.IGNORECASE,
)
# git@github.com:o/n.git, the scp-like form of ssh.
_SCP_FORM = re.compile(
    r"^(?:[^@/:]+@)?github\.com:/?(?P<owner>[^/]+)/(?P<name>[^/]+?)(?:\.git)?/?$",
    re.IGNORECASE,
)
_PART = re.compile(r"^[A-Za-z0-9_.-]+$")


def github_repository(url: str) -> str | None:
    """`owner/name` of a GitHub remote URL (https or ssh form), else None."""
    url = url.strip()
    found = _URL_FORM.match(url) or _SCP_FORM.match(url)
    if found is None:
        return None
    owner, name = found["owner"], found["name"]
    if not (_PART.match(owner) and _PART.match(name)) or name in (".", ".."):
        return None
    return f"{owner}/{name}"


def checked_repository(value: str) -> str:
    """`--repository`: owner/name, as on GitHub."""
    owner, sep, name = value.strip().partition("/")
    if not sep or not _PART.match(owner) or not _PART.match(name):
        raise CliError(f"--repository is OWNER/NAME, as on GitHub (got {value!r})", Exit.USAGE)
    return f"{owner}/{name}"


def git(path: Path, *args: str) -> str:
    """git's output (stripped) run in `path`; its own message when it fails."""
    try:
        done = subprocess.run(
            ["git", "-C", str(path), *args],
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError as exc:
        raise CliError("git is not installed (deploy reads the checkout with it)") from exc
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        raise CliError(f"git {args[0]} failed in {path}: {reason}", Exit.USAGE)
    return done.stdout.strip()


def _git_or_none(path: Path, *args: str) -> str | None:
    try:
        return git(path, *args) or None
    except CliError:
        return None


@dataclass(frozen=True)
class Checkout:
    """A git working tree, named by its top directory."""

    top: Path

    @classmethod
    def at(cls, path: Path) -> Checkout:
        if not path.is_dir():
            raise CliError(f"{path} is not a directory", Exit.USAGE)
        top = _git_or_none(path, "rev-parse", "--show-toplevel")
        if top is None:
            raise CliError(f"{path} is not in a git checkout", Exit.USAGE)
        return cls(Path(top))

    def origin_repository(self) -> str | None:
        """`owner/name` when the remote `origin` is on GitHub."""
        url = _git_or_none(self.top, "remote", "get-url", "origin")
        return github_repository(url) if url else None

    def branch(self) -> str | None:
        """The branch checked out; None on a detached HEAD."""
        return _git_or_none(self.top, "symbolic-ref", "--quiet", "--short", "HEAD")

    def commit(self, rev: str = "HEAD") -> str:
        """The full id of the commit `rev` names."""
        if rev.startswith("-"):
            raise CliError(f"--commit {rev!r} is not a commit", Exit.USAGE)
        found = _git_or_none(self.top, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
        if found is None:
            raise CliError(f"no commit {rev!r} in {self.top}", Exit.USAGE)
        return found

    def committed_at(self, commit: str) -> str:
        """The commit time, ISO 8601 (the portal keeps the newest push)."""
        return git(self.top, "show", "-s", "--format=%cI", commit)

    def has_changes(self) -> bool:
        """Uncommitted changes, untracked files included (they are not deployed either)."""
        return bool(git(self.top, "status", "--porcelain"))

    def archive(self, commit: str, dest: Path) -> Path:
        """The commit's tree as a gzip'd tar at `dest`."""
        git(self.top, "archive", "--format=tar.gz", "-o", str(dest), commit)
        return dest
