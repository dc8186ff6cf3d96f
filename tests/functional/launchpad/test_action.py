"""The LaunchPad action's script, run as GitHub runs it for each event (the environment
GitHub sets, a recorded payload, GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files), with the
real portalctl, against the live portal and the GitHub double (tests/fixtures/
github_double.py), which checks paths and bodies and keeps the pull request's comment.

Deploys run on the LaunchPad stack (tests/fixtures/launchpad.py: guest emulation, the
gateway's nginx), so the app's own answer is checked through nginx. What never reaches a
container (bad input, a refused token, the destroy of nothing) runs against the test web
server of tests/functional/cli.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.fixtures.github_double import GitHubDouble, github_double
from tests.fixtures.launchpad_action import (
    BRANCH_1,
    BRANCH_2,
    MAIN_AFTER,
    ActionRun,
    payload,
    run_action,
    sample_repository,
)
from tests.functional.cli.conftest import user_with_token, web  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.timeout(600)]

IN_CI = os.environ.get("CI", "").lower() == "true"
GREETING = "hello from the action"
SECRET = "correct-horse-battery-staple"
ENV_YAML = f"GREETING: {GREETING}\nSECRET_KEY: '{SECRET}'\n"
APP = {"install": "sh install.sh", "start": "python3 app.py", "port": "8000"}


def portalctl_bin() -> str:
    """The portalctl beside this Python (make install), or the one a developer points at."""
    return os.environ.get("LAUNCHPAD_TEST_PORTALCTL") or str(
        Path(sys.executable).with_name("portalctl")
    )


@dataclass
class Action:
    """Runs the script for an event against one portal and one GitHub double."""

    tmp: Path
    portal_url: str
    token: str
    github: GitHubDouble
    workspace: Path
    commits: dict[str, str]
    stack: Any = None
    runs: list[ActionRun] = field(default_factory=list)

    def __call__(self, event: str, name: str, **inputs: str) -> ActionRun:
        done = run_action(
            self.tmp / f"run{len(self.runs) + 1}",
            event=event,
            body=payload(name, self.commits),
            inputs={
                "portal-url": self.portal_url,
                "token": self.token,
                "github-token": self.github.token,
                "command": "auto",
                "env": ENV_YAML,
                **APP,
                **inputs,
            },
            workspace=self.workspace,
            portalctl=portalctl_bin(),
            github_url=self.github.url,
            default_sha=self.commits[MAIN_AFTER],
        )
        self.runs.append(done)
        return done

    def api(self, path: str) -> Any:
        answer = requests.get(
            f"{self.portal_url}/api/v1/{path}",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        return answer.json()

    def deployments(self, query: str = "") -> list[dict[str, Any]]:
        """The user's deployments (one page is plenty here)."""
        page = self.api(f"deployments/{'?' + query if query else ''}")
        return list(page["results"])


@pytest.fixture
def github() -> Iterator[GitHubDouble]:
    with github_double(pull_requests={7}) as double:
        yield double


@pytest.fixture
def checkout(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    path = tmp_path / "shop"
    return path, sample_repository(path)


@pytest.fixture
def live(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    github: GitHubDouble,
    checkout: tuple[Path, dict[str, str]],
) -> Action:
    """The live portal with guest emulation: a deploy really runs the app."""
    try:
        stack = request.getfixturevalue("launchpad_stack")
    except pytest.FixtureLookupError:
        message = "the LaunchPad stack fixture (tests/fixtures/launchpad.py) is missing"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    _, token = stack.user("alice")
    return Action(tmp_path, stack.url, token, github, *checkout, stack=stack)


@pytest.fixture
def portal(
    web: str,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
    github: GitHubDouble,
    checkout: tuple[Path, dict[str, str]],
) -> Action:
    """The portal's test web server: enough for what never reaches a container."""
    _, token = user_with_token("alice")
    return Action(tmp_path, web, token, github, *checkout)


def bot_comments(github: GitHubDouble) -> list[dict[str, Any]]:
    return [c for c in github.comments_on(7) if c["user"]["type"] == "Bot"]


def only_deployment(github: GitHubDouble, environment: str) -> dict[str, Any]:
    (record,) = github.in_environment(environment)
    return record


def assert_live(action: Action, done: ActionRun, name: str, answer: str) -> None:
    """The step succeeded, said where, and the app answers its own text through nginx."""
    assert done.code == 0, done.log
    assert done.outputs["container"] == name
    assert done.outputs["url"].startswith(f"https://{name}.")
    assert done.outputs["ssh"].startswith("ssh ")
    assert done.outputs["url"] in done.summary and done.outputs["ssh"] in done.summary
    got = action.stack.wait_get(name)
    assert got.status == 200, got.body
    assert f"{answer} greeting={GREETING} install=done" in got.body
    # The env's values reached the app, and never the log (the job's lines are in it).
    assert SECRET not in done.stdout.replace(f"::add-mask::{SECRET}", "")
    assert SECRET not in done.stderr


# -- deploys, on the LaunchPad stack


def test_push_deploys_the_branch_and_reports_it(live: Action, github: GitHubDouble) -> None:
    done = live("push", "push")
    assert_live(live, done, "alice-shop-main", "shop v1")
    record = only_deployment(github, "alice-shop-main")
    assert record["sha"] == live.commits[MAIN_AFTER] and not record["transient_environment"]
    assert github.states(record["id"]) == ["in_progress", "success"]
    status = github.statuses[record["id"]][-1]
    assert status["environment_url"] == done.outputs["url"]
    assert status["log_url"] == "https://github.com/alice/shop/actions/runs/8123456789"
    (deployment,) = live.deployments("repository=alice/shop")
    assert deployment["commit"] == live.commits[MAIN_AFTER] and deployment["state"] == "live"
    assert deployment["env_names"] == ["GREETING", "SECRET_KEY"]


def test_the_first_push_of_a_new_branch_is_deployed(live: Action, github: GitHubDouble) -> None:
    body = payload("push-new-branch")
    assert body["created"] and body["before"] == "0" * 40
    done = live("push", "push-new-branch")
    assert_live(live, done, "alice-shop-feature-login", "login v1")
    record = only_deployment(github, "alice-shop-feature-login")
    assert github.states(record["id"]) == ["in_progress", "success"]


def test_a_pull_request_opened_synchronized_and_closed(live: Action, github: GitHubDouble) -> None:
    opened = live("pull_request", "pull_request-opened")
    assert_live(live, opened, "alice-shop-pr-7", "login v1")
    (comment,) = bot_comments(github)
    assert opened.outputs["url"] in comment["body"]
    vmid = live.api("deployments/alice-shop-pr-7/")["container"]["vmid"]

    synced = live("pull_request", "pull_request-synchronize")
    assert_live(live, synced, "alice-shop-pr-7", "login v2")
    after = live.api("deployments/alice-shop-pr-7/")
    assert after["container"]["vmid"] == vmid  # updated in place, not recreated
    assert after["serving_commit"] == live.commits[BRANCH_2]
    (edited,) = bot_comments(github)
    assert (
        edited["id"] == comment["id"]
        and f"`{live.commits[BRANCH_2][:7]}` is live" in edited["body"]
    )
    assert [c.method for c in github.writes() if "/comments" in c.path].count("POST") == 1
    records = github.in_environment("alice-shop-pr-7")
    assert len(records) == 2 and all(r["transient_environment"] for r in records)

    closed = live("pull_request", "pull_request-closed")
    assert closed.code == 0, closed.log
    assert live.deployments("repository=alice/shop&ref=pr-7") == []
    assert live.stack.get("alice-shop-pr-7").status != 200
    assert live.stack.resolve("alice-shop-pr-7") == []
    for record in records:
        assert github.states(record["id"])[-1] == "inactive"
    (removed,) = bot_comments(github)
    assert removed["id"] == comment["id"] and "The preview was removed" in removed["body"]


def test_delete_destroys_the_branch_and_a_second_delete_finds_nothing(
    live: Action, github: GitHubDouble
) -> None:
    assert live("push", "push-new-branch").code == 0
    gone = live("delete", "delete")
    assert gone.code == 0, gone.log
    assert live.deployments("repository=alice/shop&ref=feature/login") == []
    assert live.stack.resolve("alice-shop-feature-login") == []
    record = only_deployment(github, "alice-shop-feature-login")
    assert github.states(record["id"])[-1] == "inactive"
    again = live("delete", "delete")
    assert again.code == 0, again.log
    assert "nothing to remove" in again.commands("notice")[-1]


def test_a_failing_deploy_fails_the_step_with_the_portals_message(
    live: Action, github: GitHubDouble
) -> None:
    done = live("pull_request", "pull_request-opened", build="echo the build broke >&2; exit 3")
    assert done.code == 1
    (message,) = done.commands("error")
    deployment = live.api("deployments/alice-shop-pr-7/")
    assert deployment["state"] == "failed"
    assert deployment["state_message"].split("\n")[0][:40] in message.replace("%0A", "\n")
    job_log = [ln for ln in done.stdout.splitlines() if not ln.startswith(("$ ", "::"))]
    assert any("the build broke" in ln for ln in job_log)  # the job's log, live
    record = only_deployment(github, "alice-shop-pr-7")
    assert github.states(record["id"]) == ["in_progress", "failure"]
    (comment,) = bot_comments(github)
    assert "failed" in comment["body"]


# -- what never reaches a container, on the test web server


def test_bad_env_json_fails_before_anything_is_sent(portal: Action, github: GitHubDouble) -> None:
    done = portal("push", "push", env='{"GREETING": "hi", "SECRET_KEY": "' + SECRET + '",}')
    assert done.code == 1
    (message,) = done.commands("error")
    assert "env is not valid JSON" in message
    assert SECRET not in done.log
    assert github.calls == []
    assert portal.deployments() == []


def test_a_refused_deploy_fails_with_the_portals_message_and_reports_failure(
    portal: Action, github: GitHubDouble
) -> None:
    portal.token = "not-a-token"
    done = portal("push", "push")
    assert done.code == 1
    (message,) = done.commands("error")
    assert "exited with" not in message  # the portal's own words, not a status number
    record = only_deployment(github, "alice-shop-main")
    assert github.states(record["id"]) == ["in_progress", "failure"]
    assert message.split("%0A")[0][:30] in github.statuses[record["id"]][-1]["description"]


def test_destroying_a_branch_never_deployed_is_no_error(
    portal: Action, github: GitHubDouble
) -> None:
    done = portal("delete", "delete")
    assert done.code == 0, done.log
    assert "nothing to remove" in done.commands("notice")[-1]
    assert done.outputs["container"] == "alice-shop-feature-login"


def test_a_deleted_tag_does_nothing(portal: Action, github: GitHubDouble) -> None:
    assert portal("delete", "delete-tag").code == 0
    assert github.calls == []
    assert portal.deployments() == []
    assert "tag" in portal.runs[-1].commands("notice")[0]


def test_the_recorded_payloads_are_all_used() -> None:
    names = {p.stem for p in (Path(__file__).parent / "payloads").glob("*.json")}
    assert names == {
        "push", "push-new-branch", "push-branch-deleted", "pull_request-opened",
        "pull_request-synchronize", "pull_request-reopened", "pull_request-closed",
        "delete", "delete-tag", "workflow_dispatch",
    }  # fmt: skip
    assert BRANCH_1 in (Path(__file__).parent / "payloads" / "push-new-branch.json").read_text()
