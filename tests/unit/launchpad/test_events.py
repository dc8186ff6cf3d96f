"""Which command, ref and commit each event gives (the recorded payloads, as GitHub sets
the environment for them)."""

from __future__ import annotations

from typing import Any

import pytest
from lp_events import DEPLOY, DESTROY, SKIP, EventError, decide

from tests.fixtures.launchpad_action import (
    BRANCH_1,
    BRANCH_2,
    MAIN_AFTER,
    event_env,
    payload,
)

DEFAULT_SHA = "a" * 40  # the default branch's last commit, as GitHub sets it for delete


def env_for(event: str, body: dict[str, Any]) -> dict[str, str]:
    return {"GITHUB_REPOSITORY": "alice/shop", **event_env(event, body, DEFAULT_SHA)}


@pytest.mark.parametrize(
    ("event", "name", "command", "ref", "pr", "commit"),
    [
        ("push", "push", DEPLOY, "main", None, MAIN_AFTER),
        # The first push of a branch: created, before all zeros; deployed like any other.
        ("push", "push-new-branch", DEPLOY, "feature/login", None, BRANCH_1),
        # A push that deleted the branch: GitHub sets GITHUB_REF to the default branch.
        ("push", "push-branch-deleted", DESTROY, "feature/login", None, ""),
        ("pull_request", "pull_request-opened", DEPLOY, "pr-7", 7, BRANCH_1),
        ("pull_request", "pull_request-synchronize", DEPLOY, "pr-7", 7, BRANCH_2),
        ("pull_request", "pull_request-reopened", DEPLOY, "pr-7", 7, BRANCH_2),
        ("pull_request", "pull_request-closed", DESTROY, "pr-7", 7, ""),
        ("delete", "delete", DESTROY, "feature/login", None, ""),
        ("workflow_dispatch", "workflow_dispatch", DEPLOY, "feature/login", None, DEFAULT_SHA),
    ],
)
def test_each_event_gives_its_command_ref_and_commit(
    event: str, name: str, command: str, ref: str, pr: int | None, commit: str
) -> None:
    body = payload(name)
    target = decide(event, body, env_for(event, body))
    assert (target.command, target.ref, target.pull_request, target.commit) == (
        command,
        ref,
        pr,
        commit,
    )
    assert target.repository == "alice/shop"


def test_a_pull_request_deploys_its_head_not_the_merge_commit() -> None:
    body = payload("pull_request-opened")
    env = env_for("pull_request", body)
    assert env["GITHUB_SHA"] == body["pull_request"]["merge_commit_sha"]
    assert decide("pull_request", body, env).commit == body["pull_request"]["head"]["sha"]


def test_a_deleted_branch_is_never_taken_for_the_default_branch() -> None:
    for event, name in (("delete", "delete"), ("push", "push-branch-deleted")):
        body = payload(name)
        env = env_for(event, body)
        assert env["GITHUB_REF_NAME"] == "main"
        assert decide(event, body, env).ref == "feature/login"


@pytest.mark.parametrize(
    ("event", "body"),
    [
        ("delete", payload("delete-tag")),
        ("push", {**payload("push"), "ref": "refs/tags/v1.2.0"}),
        ("pull_request", {**payload("pull_request-opened"), "action": "labeled"}),
    ],
)
def test_tags_and_other_pull_request_actions_do_nothing(event: str, body: dict[str, Any]) -> None:
    target = decide(event, body, env_for(event, body))
    assert target.command == SKIP
    assert target.why


def test_an_explicit_command_wins_over_the_event() -> None:
    body = payload("push")
    target = decide("push", body, env_for("push", body), "destroy")
    assert (target.command, target.ref) == (DESTROY, "main")
    body = payload("pull_request-opened") | {"action": "labeled"}
    assert decide("pull_request", body, env_for("pull_request", body), "deploy").command == DEPLOY


def test_another_event_needs_an_explicit_command() -> None:
    env = {"GITHUB_REPOSITORY": "alice/shop", "GITHUB_REF_NAME": "main", "GITHUB_SHA": MAIN_AFTER}
    with pytest.raises(EventError, match="set the command input"):
        decide("schedule", {}, env)
    assert decide("schedule", {}, env, "deploy").ref == "main"
    assert decide("schedule", {}, env, "destroy").command == DESTROY


@pytest.mark.parametrize(
    ("event", "name", "command", "message"),
    [
        ("delete", "delete", "deploy", "nothing to deploy"),
        ("pull_request", "pull_request-closed", "deploy", "nothing to deploy"),
        ("delete", "delete-tag", "destroy", "nothing to destroy"),
        ("push", "push", "redeploy", "command must be one of"),
    ],
)
def test_commands_that_make_no_sense_are_errors(
    event: str, name: str, command: str, message: str
) -> None:
    body = payload(name)
    with pytest.raises(EventError, match=message):
        decide(event, body, env_for(event, body), command)


def test_a_payload_without_a_commit_is_an_error() -> None:
    body = payload("pull_request-opened")
    body["pull_request"]["head"]["sha"] = ""
    with pytest.raises(EventError, match="head.sha"):
        decide("pull_request", body, env_for("pull_request", body))
