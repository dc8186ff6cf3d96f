"""What a workflow run asks of LaunchPad: deploy, destroy or nothing, for which ref and
commit, decided from the event GitHub ran the workflow for.

| event | command | ref | commit |
|---|---|---|---|
| `push` to a branch (a new branch too) | deploy | the branch | the payload's `after` |
| `push` with `deleted: true` | destroy | the branch | - |
| `pull_request` opened, synchronize, reopened | deploy | `pr-<n>` | `pull_request.head.sha` |
| `pull_request` closed | destroy | `pr-<n>` | - |
| `workflow_dispatch` | deploy | `GITHUB_REF_NAME` | `GITHUB_SHA` |
| `delete` of a branch | destroy | the payload's `ref` | - |
| a tag pushed or deleted, another `pull_request` action | nothing | | |

Refs come from the payload where GitHub puts them there: for a deleted branch, GitHub sets
`GITHUB_REF` and `GITHUB_SHA` to the default branch, which must never be destroyed by it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEPLOY, DESTROY, SKIP = "deploy", "destroy", "skip"
COMMANDS = ("auto", DEPLOY, DESTROY)
ZERO_SHA = "0" * 40
_SHA = re.compile(r"[0-9a-f]{7,40}")
PR_DEPLOY_ACTIONS = ("opened", "synchronize", "reopened")
EVENTS = ("push", "pull_request", "workflow_dispatch", "delete")


class EventError(ValueError):
    """The event (or the command input) gives nothing sensible to do."""


@dataclass(frozen=True)
class Target:
    command: str  # DEPLOY, DESTROY or SKIP
    repository: str  # owner/name, the base repository for a pull request
    ref: str = ""  # a branch, or pr-<n>
    pull_request: int | None = None
    commit: str = ""  # deploys only
    why: str = ""  # a skip's reason, said in the log

    @property
    def is_pull_request(self) -> bool:
        return self.pull_request is not None


def decide(
    event_name: str, payload: Mapping[str, Any], environ: Mapping[str, str], command: str = "auto"
) -> Target:
    """The target of this run. `command` (the input) overrides what the event would do."""
    command = (command or "auto").strip().lower()
    if command not in COMMANDS:
        raise EventError(f"command must be one of {', '.join(COMMANDS)}, not {command!r}")
    repository = environ.get("GITHUB_REPOSITORY", "")
    if "/" not in repository:
        raise EventError("GITHUB_REPOSITORY is not set (owner/name)")
    auto = _from_event(event_name, payload, environ, repository)
    if command == "auto" and event_name not in EVENTS:
        raise EventError(
            f"the {event_name} event does not say what to do: set the command input "
            "(deploy or destroy)"
        )
    if command == "auto" or command == auto.command:
        return auto
    if auto.command == SKIP and not auto.ref:
        raise EventError(f"nothing to {command}: {auto.why}")
    if command == DEPLOY and not auto.commit:
        raise EventError(f"nothing to deploy for the {event_name} event: {auto.ref} is gone")
    return Target(command, repository, auto.ref, auto.pull_request, auto.commit)


def _from_event(
    event_name: str, payload: Mapping[str, Any], environ: Mapping[str, str], repository: str
) -> Target:
    if event_name == "push":
        return _push(payload, environ, repository)
    if event_name == "pull_request":
        return _pull_request(payload, repository)
    if event_name == "delete":
        if payload.get("ref_type") != "branch":
            return Target(SKIP, repository, why=f"a {payload.get('ref_type')} was deleted")
        return Target(DESTROY, repository, _branch(str(payload.get("ref") or "")))
    ref = environ.get("GITHUB_REF_NAME", "")
    if not ref:
        raise EventError("GITHUB_REF_NAME is not set")
    commit = _commit(environ.get("GITHUB_SHA", ""), "GITHUB_SHA")
    if event_name == "workflow_dispatch":
        return Target(DEPLOY, repository, ref, commit=commit)
    # Any other event: only an explicit command says what to do with its ref.
    return Target(SKIP, repository, ref, commit=commit, why=f"the {event_name} event")


def _push(payload: Mapping[str, Any], environ: Mapping[str, str], repository: str) -> Target:
    full = str(payload.get("ref") or environ.get("GITHUB_REF", ""))
    if full.startswith("refs/tags/"):
        return Target(SKIP, repository, why=f"a tag was pushed ({full[len('refs/tags/') :]})")
    if not full.startswith("refs/heads/"):
        raise EventError(f"the push is not to a branch: {full!r}")
    branch = _branch(full[len("refs/heads/") :])
    if payload.get("deleted"):
        return Target(DESTROY, repository, branch)
    # The first push of a branch (created: true, before all zeros) is a push like another.
    after = str(payload.get("after") or "")
    sha = after if after and after != ZERO_SHA else environ.get("GITHUB_SHA", "")
    return Target(DEPLOY, repository, branch, commit=_commit(sha, "the pushed commit"))


def _pull_request(payload: Mapping[str, Any], repository: str) -> Target:
    action = str(payload.get("action") or "")
    pr = payload.get("pull_request") or {}
    number = payload.get("number") or pr.get("number")
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        raise EventError("the pull_request payload has no number")
    ref = f"pr-{number}"
    if action == "closed":
        return Target(DESTROY, repository, ref, number)
    head = _commit(str((pr.get("head") or {}).get("sha") or ""), "pull_request.head.sha")
    if action in PR_DEPLOY_ACTIONS:
        return Target(DEPLOY, repository, ref, number, head)
    return Target(SKIP, repository, ref, number, head, why=f"pull_request {action}")


def _branch(name: str) -> str:
    if not name:
        raise EventError("the event names no branch")
    return name


def _commit(sha: str, what: str) -> str:
    if not _SHA.fullmatch(sha):
        raise EventError(f"{what} is not a commit id: {sha!r}")
    return sha


# -- the deployment's name, before the portal answers

_OTHER = re.compile(r"[^a-z0-9-]")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def container_name(repository: str, ref: str) -> str:
    """The portal's name for the deployment of `ref` (docs/launchpad.md, Names): the GitHub
    environment is called after it before the portal has answered. The portal's answer
    wins (the final status carries the name it gives); the unit tests hold the two rules
    side by side."""
    raw = _OTHER.sub("-", f"{repository.replace('/', '-', 1)}-{ref}".lower())
    digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
    old = raw if len(raw) <= 63 else f"{raw[:54]}-{digest}"
    if _LABEL.fullmatch(old) and not old.startswith("xn--"):
        return old
    head = re.sub(r"-{2,}", "-", raw[:54]).strip("-") or "deploy"
    return f"{head}-{digest}"
