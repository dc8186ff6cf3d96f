"""What the action writes: the comment, the summary, step outputs, workflow commands."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from lp_report import (
    FAILED,
    LIVE,
    REMOVED,
    Outcome,
    comment_body,
    comment_marker,
    mask,
    workflow_command,
    write_outputs,
)

from tests.fixtures.launchpad_action import read_outputs

LIVE_BODY = {
    "name": "alice-shop-pr-7",
    "url": "https://alice-shop-pr-7.apps.example.org/",
    "ssh": "ssh -p 10003 root@gw.example.org",
    "serving_commit": "b" * 40,
    "expires_at": "2026-03-09T10:00:12.705458Z",
}


def test_the_comment_starts_with_its_marker_and_shows_url_and_ssh() -> None:
    body = comment_body(Outcome.from_deployment(LIVE, "pr-7", "b" * 40, LIVE_BODY))
    assert body.startswith(comment_marker("pr-7") + "\n")
    assert "`bbbbbbb` is live" in body
    assert "| URL | https://alice-shop-pr-7.apps.example.org/ |" in body
    assert "| SSH | `ssh -p 10003 root@gw.example.org` |" in body
    assert "| Expires | 2026-03-09 10:00 UTC |" in body


def test_a_failure_quotes_the_portal_and_says_what_still_serves() -> None:
    outcome = Outcome.from_deployment(
        FAILED, "pr-7", "c" * 40, LIVE_BODY, message="the build failed\nexit status 2"
    )
    body = comment_body(outcome)
    assert "failed" in body
    assert "> the build failed\n> exit status 2" in body
    assert "| Still serving | `bbbbbbb` |" in body


def test_removed_says_so_without_the_url() -> None:
    body = comment_body(Outcome(REMOVED, "pr-7", name="alice-shop-pr-7"))
    assert "The preview was removed" in body
    assert "URL" not in body
    assert "SSH" not in body


def test_outputs_are_delimited_blocks_a_value_cannot_break(tmp_path: Path) -> None:
    path = tmp_path / "output"
    tricky = "line1\nurl=https://evil\nghadelimiter_x"
    write_outputs(str(path), {"url": "https://a/", "ssh": tricky, "container": ""})
    assert read_outputs(path) == {"url": "https://a/", "ssh": tricky, "container": ""}


def test_workflow_command_escaping() -> None:
    out = io.StringIO()
    workflow_command("error", "50% done\nsecond line", out, title="a:b,c")
    assert out.getvalue() == "::error title=a%3Ab%2Cc::50%25 done%0Asecond line\n"


def test_mask_registers_each_line_and_skips_trivial_values(
    capsys: pytest.CaptureFixture[str],
) -> None:
    mask("-----BEGIN-----\nc2VjcmV0\n-----END-----")
    mask("1")
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "::add-mask::-----BEGIN-----",
        "::add-mask::c2VjcmV0",
        "::add-mask::-----END-----",
    ]
