"""The script's whole run for each event, with a stand-in for portalctl (the one boundary
stubbed: what portalctl answers) and the GitHub double. The same runs against the live
portal are in tests/functional/launchpad/test_action.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lp_report import comment_marker

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

from .conftest import FakePortalctl

SECRET = "hunter2-very-secret"
NAME = "alice-shop-pr-7"


def deployment(commit: str, state: str = "live", **more: Any) -> dict[str, Any]:
    return {
        "name": NAME,
        "repository": "alice/shop",
        "ref": "pr-7",
        "pull_request": 7,
        "commit": commit,
        "serving_commit": commit if state == "live" else "",
        "state": state,
        "state_message": "",
        "url": f"https://{NAME}.apps.example.org/",
        "ssh": "ssh -p 10003 root@gw.example.org",
        "container": {"id": 3, "hostname": NAME, "vmid": 105, "status": "running"},
        "job": {"id": "5d0c", "kind": "deploy", "status": "succeeded"},
        "env_names": ["SECRET_KEY"],
        "expires_at": "2026-03-09T10:00:00Z",
        "outcome": "updated",
        **more,
    }


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    path = tmp_path_factory.mktemp("checkout") / "shop"
    return path, sample_repository(path)


@pytest.fixture
def github() -> Iterator[GitHubDouble]:
    with github_double(pull_requests={7}) as double:
        yield double


class Runner:
    def __init__(
        self,
        tmp: Path,
        repo: tuple[Path, dict[str, str]],
        github: GitHubDouble,
        fake: FakePortalctl,
    ) -> None:
        self.tmp, self.github, self.fake = tmp, github, fake
        self.workspace, self.commits = repo
        self.n = 0

    def __call__(self, event: str, name: str, **inputs: str) -> ActionRun:
        self.n += 1
        body = payload(name, self.commits)
        return run_action(
            self.tmp / f"run{self.n}",
            event=event,
            body=body,
            inputs={
                "portal-url": "https://portal.example.org",
                "token": "portal-token",
                "github-token": self.github.token,
                "command": "auto",
                "start": "python3 app.py",
                "env": f'{{"SECRET_KEY": "{SECRET}"}}',
                **inputs,
            },
            workspace=self.workspace,
            portalctl=str(self.fake.path),
            github_url=self.github.url,
            default_sha=self.commits[MAIN_AFTER],
            extra_env=self.fake.env,
        )


@pytest.fixture
def run(
    tmp_path: Path,
    repo: tuple[Path, dict[str, str]],
    github: GitHubDouble,
    fake_portalctl: FakePortalctl,
) -> Runner:
    return Runner(tmp_path, repo, github, fake_portalctl)


def bot_comments(github: GitHubDouble) -> list[dict[str, Any]]:
    return [c for c in github.comments_on(7) if c["user"]["type"] == "Bot"]


def test_a_pull_request_opened_synchronized_and_closed(
    run: Runner, github: GitHubDouble, fake_portalctl: FakePortalctl
) -> None:
    head1, head2 = run.commits[BRANCH_1], run.commits[BRANCH_2]
    fake_portalctl.answer("deploy", {"stdout": deployment(head1, outcome="created")})
    opened = run("pull_request", "pull_request-opened")
    assert opened.code == 0, opened.log
    assert opened.outputs == {
        "url": f"https://{NAME}.apps.example.org/",
        "ssh": "ssh -p 10003 root@gw.example.org",
        "container": NAME,
    }
    assert f"https://{NAME}.apps.example.org/" in opened.summary
    assert "ssh -p 10003 root@gw.example.org" in opened.summary

    call = fake_portalctl.calls()[0]
    argv = call["argv"]
    assert argv[:2] == ["deploy", str(run.workspace)]
    assert argv[argv.index("--pr") + 1] == "7" and "--ref" not in argv
    assert argv[argv.index("--commit") + 1] == head1
    assert argv[argv.index("--start") + 1] == "python3 app.py"
    assert argv[-1] == "--json"
    assert call["env_file"] == {"SECRET_KEY": SECRET} and call["env_mode"] == 0o600
    assert SECRET not in " ".join(argv)
    assert call["inputs"] == [] and call["token"] == "portal-token"
    assert f"::add-mask::{SECRET}" in opened.stdout

    (first,) = github.deployments.values()
    assert first["sha"] == head1 and first["environment"] == NAME and first["transient_environment"]
    assert github.states(first["id"]) == ["in_progress", "success"]
    success = github.statuses[first["id"]][-1]
    assert success["environment_url"] == f"https://{NAME}.apps.example.org/"
    assert success["log_url"] == "https://github.com/alice/shop/actions/runs/8123456789"
    (comment,) = bot_comments(github)
    assert comment["body"].startswith(comment_marker("pr-7"))
    assert "is live" in comment["body"]

    fake_portalctl.answer("deploy", {"stdout": deployment(head2)})
    synced = run("pull_request", "pull_request-synchronize")
    assert synced.code == 0, synced.log
    assert len(github.deployments) == 2
    assert [c.method for c in github.writes() if "comments" in c.path] == [
        "POST",
        "PATCH",
        "PATCH",
        "PATCH",
    ]
    (comment,) = bot_comments(github)
    assert f"`{head2[:7]}` is live" in comment["body"]

    fake_portalctl.answer(
        "deployments destroy",
        {
            "stderr": ["removing alice-shop-pr-7: job 9f0c queued"],
            "text": "alice-shop-pr-7 is removed",
        },
    )
    closed = run("pull_request", "pull_request-closed")
    assert closed.code == 0, closed.log
    assert fake_portalctl.calls()[-1]["argv"] == [
        "deployments",
        "destroy",
        "--repository",
        "alice/shop",
        "--ref",
        "pr-7",
        "--wait",
    ]
    for deployment_id in github.deployments:
        assert github.states(deployment_id)[-1] == "inactive"
    (comment,) = bot_comments(github)
    assert "The preview was removed" in comment["body"]
    assert closed.outputs["container"] == NAME and closed.outputs["url"] == ""


def test_a_failing_deploy_fails_the_step_with_the_portals_message(
    run: Runner, github: GitHubDouble, fake_portalctl: FakePortalctl
) -> None:
    head = run.commits[BRANCH_1]
    failed = deployment(
        head,
        "failed",
        serving_commit="9" * 40,
        state_message="the build failed: the previous version still serves",
    )
    fake_portalctl.answer(
        "deploy",
        {
            "code": 6,
            "stderr": [
                "[build] npm ERR! missing script: build",
                "error: the build failed (exit status 1)",
                "  the previous version still serves",
            ],
            "stdout": failed,
        },
    )
    done = run("pull_request", "pull_request-opened", build="npm run build")
    assert done.code == 1
    assert done.commands("error") == [
        "the build failed (exit status 1)%0Athe previous version still serves"
    ]
    assert "npm ERR! missing script" in done.stdout  # the job's log, live in the step's log
    (record,) = github.deployments.values()
    assert github.states(record["id"]) == ["in_progress", "failure"]
    assert github.statuses[record["id"]][-1]["description"].startswith("the build failed")
    (comment,) = bot_comments(github)
    assert "failed" in comment["body"] and "| Still serving | `9999999` |" in comment["body"]
    assert done.outputs["url"] == f"https://{NAME}.apps.example.org/"


def test_a_refused_deploy_without_a_body_still_reports_failure(
    run: Runner, github: GitHubDouble, fake_portalctl: FakePortalctl
) -> None:
    fake_portalctl.answer(
        "deploy", {"code": 5, "stderr": ["error: cores: quota exceeded: 4 of 4 containers used"]}
    )
    done = run("push", "push")
    assert done.code == 1
    assert done.commands("error") == ["cores: quota exceeded: 4 of 4 containers used"]
    (record,) = github.deployments.values()
    assert not record["transient_environment"] and record["environment"] == "alice-shop-main"
    assert github.states(record["id"]) == ["in_progress", "failure"]
    assert not github.comments  # a push has no pull request to comment on


def test_bad_env_json_fails_before_anything_is_sent(
    run: Runner, github: GitHubDouble, fake_portalctl: FakePortalctl
) -> None:
    done = run("push", "push", env='{"SECRET_KEY": "' + SECRET + '",}')
    assert done.code == 1
    (message,) = done.commands("error")
    assert "not valid JSON" in message and SECRET not in done.log
    assert fake_portalctl.calls() == []
    assert github.calls == []


def test_the_first_push_of_a_new_branch_is_deployed(
    run: Runner, github: GitHubDouble, fake_portalctl: FakePortalctl
) -> None:
    head = run.commits[BRANCH_1]
    fake_portalctl.answer(
        "deploy", {"stdout": deployment(head, name="alice-shop-feature-login", outcome="created")}
    )
    done = run("push", "push-new-branch")
    assert done.code == 0, done.log
    argv = fake_portalctl.calls()[0]["argv"]
    assert argv[argv.index("--ref") + 1] == "feature/login"
    assert argv[argv.index("--commit") + 1] == head


def test_a_deleted_branch_destroys_it_and_an_absent_one_is_no_error(
    run: Runner, github: GitHubDouble, fake_portalctl: FakePortalctl
) -> None:
    fake_portalctl.answer(
        "deployments destroy", {}, {"code": 3, "stderr": ["error: no deployment of feature/login"]}
    )
    first = run("delete", "delete")
    assert first.code == 0, first.log
    again = run("push", "push-branch-deleted")
    assert again.code == 0, again.log
    assert "nothing to remove" in again.commands("notice")[-1]
    for call in fake_portalctl.calls():
        assert call["argv"] == [
            "deployments",
            "destroy",
            "--repository",
            "alice/shop",
            "--ref",
            "feature/login",
            "--wait",
        ]


def test_a_failing_destroy_fails_the_step(
    run: Runner, github: GitHubDouble, fake_portalctl: FakePortalctl
) -> None:
    fake_portalctl.answer(
        "deployments destroy",
        {"code": 6, "stderr": ["error: the delete job failed: node pve2 is offline"]},
    )
    done = run("delete", "delete")
    assert done.code == 1
    assert done.commands("error") == ["the delete job failed: node pve2 is offline"]


def test_a_deleted_tag_does_nothing(
    run: Runner, github: GitHubDouble, fake_portalctl: FakePortalctl
) -> None:
    done = run("delete", "delete-tag")
    assert done.code == 0
    assert fake_portalctl.calls() == [] and github.calls == []


def test_workflow_dispatch_deploys_the_ref(
    run: Runner, github: GitHubDouble, fake_portalctl: FakePortalctl
) -> None:
    fake_portalctl.answer(
        "deploy", {"stdout": deployment(run.commits[MAIN_AFTER], name="alice-shop-feature-login")}
    )
    done = run("workflow_dispatch", "workflow_dispatch", ttl="3", services="postgresql, redis")
    assert done.code == 0, done.log
    argv = fake_portalctl.calls()[0]["argv"]
    assert argv[argv.index("--ref") + 1] == "feature/login"
    assert argv[argv.index("--ttl") + 1] == "3"
    assert argv[argv.index("--services") + 1] == "postgresql,redis"


def test_a_deploy_portalctl_left_running_is_followed_to_its_end(
    run: Runner, github: GitHubDouble, fake_portalctl: FakePortalctl
) -> None:
    head = run.commits[MAIN_AFTER]
    fake_portalctl.answer(
        "deploy", {"stdout": deployment(head, "deploying", job={"id": "77aa", "status": "running"})}
    )
    fake_portalctl.answer("jobs logs", {"code": 6, "stderr": ["[start] app.service failed"]})
    fake_portalctl.answer(
        "deployments show",
        {"stdout": deployment(head, "failed", state_message="the app did not answer on port 8000")},
    )
    done = run("push", "push")
    assert done.code == 1
    assert [c["argv"][:2] for c in fake_portalctl.calls()] == [
        ["deploy", str(run.workspace)],
        ["jobs", "logs"],
        ["deployments", "show"],
    ]
    assert done.commands("error") == ["the app did not answer on port 8000"]


def test_an_older_commit_changes_nothing_and_is_not_a_failure(
    run: Runner, github: GitHubDouble, fake_portalctl: FakePortalctl
) -> None:
    fake_portalctl.answer(
        "deploy", {"stdout": deployment(run.commits[BRANCH_2], outcome="superseded", job=None)}
    )
    done = run("pull_request", "pull_request-opened")
    assert done.code == 0, done.log
    (record,) = github.deployments.values()
    assert github.states(record["id"]) == ["in_progress", "inactive"]


def test_github_failing_is_a_warning_not_a_failed_deploy(
    run: Runner, github: GitHubDouble, fake_portalctl: FakePortalctl
) -> None:
    github.fail("POST", r"/deployments$")
    github.fail("POST", r"/deployments$")
    fake_portalctl.answer("deploy", {"stdout": deployment(run.commits[BRANCH_1])})
    done = run("pull_request", "pull_request-opened")
    assert done.code == 0, done.log
    (warning,) = done.commands("warning")
    assert "could not create the deployment on GitHub" in warning and "500" in warning
    assert len(bot_comments(github)) == 1


def test_the_comment_is_found_again_among_many_and_never_reposted(
    run: Runner, github: GitHubDouble, fake_portalctl: FakePortalctl
) -> None:
    github.max_per_page = 2
    for n in range(3):
        github.add_comment(7, f"review note {n}")
    mine = github._new_comment(
        7,
        comment_marker("pr-7") + "\nold",
        {"login": "github-actions[bot]", "id": 41898282, "type": "Bot"},
    )
    quoted = github.add_comment(7, "> " + comment_marker("pr-7") + "\n> old\nnice")
    fake_portalctl.answer("deploy", {"stdout": deployment(run.commits[BRANCH_1])})
    done = run("pull_request", "pull_request-reopened")
    assert done.code == 0, done.log
    assert [c.method for c in github.writes() if "comments" in c.path] == ["PATCH", "PATCH"]
    assert "is live" in github.comments[mine["id"]]["body"]
    assert github.comments[quoted["id"]]["body"].endswith("nice")
    assert len(github.comments_on(7)) == 5


def test_without_a_github_token_nothing_is_reported(
    run: Runner, github: GitHubDouble, fake_portalctl: FakePortalctl
) -> None:
    fake_portalctl.answer("deploy", {"stdout": deployment(run.commits[BRANCH_1])})
    done = run("pull_request", "pull_request-opened", **{"github-token": ""})
    assert done.code == 0, done.log
    assert github.calls == []


def test_the_env_file_is_gone_after_the_run(run: Runner, fake_portalctl: FakePortalctl) -> None:
    fake_portalctl.answer("deploy", {"stdout": deployment(run.commits[MAIN_AFTER])})
    done = run("push", "push")
    assert done.code == 0, done.log
    path = fake_portalctl.calls()[0]["argv"]
    env_file = Path(path[path.index("--env-file") + 1])
    assert not env_file.exists()
    assert env_file.parent.name == "runner-temp"
