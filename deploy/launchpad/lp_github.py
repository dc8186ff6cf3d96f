"""The few GitHub REST calls LaunchPad makes, with the workflow's token:

- `POST /repos/{owner}/{repo}/deployments` and `.../deployments/{id}/statuses`: a GitHub
  Deployment per run, `in_progress` and then `success` or `failure`;
- `GET /repos/{owner}/{repo}/deployments?environment=NAME`: on destroy, each gets `inactive`;
- `GET /repos/{owner}/{repo}/issues/{n}/comments`, `POST` there and
  `PATCH /repos/{owner}/{repo}/issues/comments/{id}`: the pull request's one comment.

A GitHub error never hides the deploy's own result: the Reporter turns it into a warning
(and the step's outcome stays the portal's).
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from lp_report import FAILED, LIVE, REMOVED, SUPERSEDED, Outcome, comment_body, comment_marker
from lp_report import warning as warn

API_VERSION = "2022-11-28"
DESCRIPTION_MAX = 140  # GitHub refuses a longer deployment status description
_NEXT = re.compile(r'<([^>]+)>;\s*rel="next"')
MAX_PAGES = 20


class GitHubError(Exception):
    pass


class GitHub:
    """A small REST client (urllib: the runner's Python has it, nothing else is needed)."""

    def __init__(self, api_url: str, token: str, repository: str, timeout: float = 30.0):
        if not api_url.startswith(("https://", "http://")):
            raise GitHubError(f"the GitHub API URL is not http(s): {api_url!r}")
        self.base = api_url.rstrip("/")
        self.token = token
        self.repo_path = "/repos/" + "/".join(urllib.parse.quote(p) for p in repository.split("/"))
        self.timeout = timeout

    def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, url: str = ""
    ) -> tuple[Any, dict[str, str]]:
        """(the decoded body, the headers); a 5xx or a dropped connection is tried again once."""
        target = url or self.base + self.repo_path + path
        data = json.dumps(body).encode() if body is not None else None
        headers = {
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {self.token}",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": "cluster-portal-launchpad",
        }
        if data is not None:
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            # The base URL's scheme is checked above; Link headers come from that server.
            request = urllib.request.Request(target, data=data, headers=headers, method=method)  # noqa: S310
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                    raw = response.read()
                    return (json.loads(raw) if raw else None), dict(response.headers)
            except urllib.error.HTTPError as exc:
                if exc.code >= 500 and attempt == 1:
                    time.sleep(1)
                    continue
                raise GitHubError(f"{method} {path}: HTTP {exc.code} {_message(exc)}") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                if attempt == 1:
                    time.sleep(1)
                    continue
                raise GitHubError(f"{method} {path}: {exc}") from None
        raise AssertionError("unreachable")

    def pages(self, path: str) -> list[Any]:
        """Every item of a list endpoint, following the Link header's next page."""
        items: list[Any] = []
        url = ""
        for _ in range(MAX_PAGES):
            page, headers = self.call("GET", path, url=url)
            items += page or []
            found = _NEXT.search(headers.get("Link", "") or headers.get("link", ""))
            if not found:
                break
            url = found.group(1)
        return items


def _message(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read() or b"{}")
    except ValueError:
        return ""
    text = str(body.get("message", "")) if isinstance(body, dict) else ""
    errors = body.get("errors") if isinstance(body, dict) else None
    return f"{text} {json.dumps(errors)}" if errors else text


class Reporter:
    """The run as GitHub shows it: the Deployment and its statuses, the PR comment."""

    def __init__(self, github: GitHub | None, log_url: str) -> None:
        self.github = github
        self.log_url = log_url
        self.deployment_id: int | None = None

    def _try(self, what: str, call: Any, *args: Any) -> Any:
        if self.github is None:
            return None
        try:
            return call(*args)
        except GitHubError as exc:
            warn(f"could not {what} on GitHub: {exc}")
            return None

    # -- the Deployment

    def started(self, *, commit: str, environment: str, transient: bool, ref: str) -> None:
        self.deployment_id = self._try(
            "create the deployment", self._create, commit, environment, transient, ref
        )
        if self.deployment_id is not None:
            self._try(
                "set the deployment's status",
                self._status,
                "in_progress",
                environment,
                "",
                f"Deploying {commit[:7]}",
            )

    def finished(self, outcome: Outcome, environment: str) -> None:
        if self.deployment_id is None:
            return
        state = {LIVE: "success", SUPERSEDED: "inactive", FAILED: "failure"}[outcome.state]
        text = outcome.message or {
            LIVE: f"{outcome.commit[:7]} is live",
            SUPERSEDED: f"{outcome.commit[:7]} is older than the deployed commit",
        }.get(outcome.state, "The deploy failed")
        self._try(
            "set the deployment's status",
            self._status,
            state,
            outcome.name or environment,
            outcome.url,
            text,
        )

    def destroyed(self, environment: str) -> None:
        self._try("mark the deployments inactive", self._inactive, environment)

    def _create(self, commit: str, environment: str, transient: bool, ref: str) -> int:
        body, _ = self.github_call(
            "POST",
            "/deployments",
            {
                "ref": commit,
                "task": "deploy",
                "auto_merge": False,  # deploy the commit pushed, never a merge GitHub makes
                "required_contexts": [],  # nor wait for other checks
                "environment": environment,
                "description": f"LaunchPad: {ref} at {commit[:7]}",
                "transient_environment": transient,
                "production_environment": False,
            },
        )
        return int(body["id"])

    def _status(self, state: str, environment: str, url: str, text: str) -> None:
        body: dict[str, Any] = {
            "state": state,
            "log_url": self.log_url,
            "description": _fit(text),
            "environment": environment,
        }
        if url:
            body["environment_url"] = url
        self.github_call("POST", f"/deployments/{self.deployment_id}/statuses", body)

    def _inactive(self, environment: str) -> None:
        query = urllib.parse.urlencode({"environment": environment, "per_page": 100})
        assert self.github is not None
        for deployment in self.github.pages(f"/deployments?{query}"):
            self.github_call(
                "POST",
                f"/deployments/{deployment['id']}/statuses",
                {
                    "state": "inactive",
                    "log_url": self.log_url,
                    "description": "The deployment was removed",
                },
            )

    def github_call(self, method: str, path: str, body: dict[str, Any]) -> tuple[Any, Any]:
        assert self.github is not None
        return self.github.call(method, path, body)

    # -- the pull request's comment

    def comment(self, number: int, outcome: Outcome, *, create: bool = True) -> None:
        """Edit the comment this action left on the pull request, or leave the first one.
        Never a second one: it is found again by its hidden marker."""
        self._try("update the pull request comment", self._comment, number, outcome, create)

    def _comment(self, number: int, outcome: Outcome, create: bool) -> None:
        assert self.github is not None
        marker = comment_marker(outcome.ref)
        mine = [
            c
            for c in self.github.pages(f"/issues/{number}/comments?per_page=100")
            if str(c.get("body", "")).startswith(marker)
        ]
        body = {"body": comment_body(outcome)}
        if mine:
            self.github_call("PATCH", f"/issues/comments/{mine[0]['id']}", body)
        elif create and outcome.state != REMOVED:
            self.github_call("POST", f"/issues/{number}/comments", body)


def _fit(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= DESCRIPTION_MAX else text[: DESCRIPTION_MAX - 1] + "…"
