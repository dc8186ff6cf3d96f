"""The push's retry on 409 `job_in_progress`, the follower's deadline and the app log's
reconnects, against an httpx MockTransport in place of the portal (the one boundary
stubbed; the real server's answers are tests/functional/cli/test_deploy.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from portalctl.client import Api
from portalctl.commands import deploy
from portalctl.commands.deployments import AppLog
from portalctl.errors import CliError, Exit
from portalctl.follow import Follower

Handler = Callable[[httpx.Request], httpx.Response]


def api_with(handler: Handler) -> Api:
    api = Api("http://portal.test", "token")
    api._http = httpx.Client(
        base_url="http://portal.test/api/v1/", transport=httpx.MockTransport(handler)
    )
    return api


def parts(request: httpx.Request) -> dict[str, bytes]:
    """The multipart body's parts by name."""
    boundary = request.headers["content-type"].split("boundary=")[1].encode()
    found = {}
    for chunk in request.content.split(b"--" + boundary)[1:-1]:
        head, _, body = chunk.partition(b"\r\n\r\n")
        name = head.split(b'name="')[1].split(b'"')[0].decode()
        found[name] = body.removesuffix(b"\r\n")
    return found


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    path = tmp_path / "source.tar.gz"
    path.write_bytes(b"\x1f\x8b-not-really")
    return path


def test_a_push_waits_for_the_running_job_and_is_sent_again(
    archive: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(deploy, "WAIT_POLL_SECONDS", 0.01)
    posts: list[dict[str, bytes]] = []
    polls = iter(["running", "running", "succeeded"])

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            posts.append(parts(request))
            if len(posts) == 1:
                body = {"code": "job_in_progress", "message": "busy", "detail": {"job": "j1"}}
                return httpx.Response(409, json=body)
            return httpx.Response(200, json={"name": "a-b-main", "outcome": "updated"})
        assert request.url.path == "/api/v1/jobs/j1/"
        job = {"id": "j1", "kind": "deploy", "container_hostname": "a-b-main"}
        return httpx.Response(200, json={**job, "status": next(polls)})

    spec = {"repository": "a/b", "ref": "main", "env": {"TOKEN": "hush-hush"}}
    answer = deploy.push(api_with(handler), spec, archive, deadline=time.monotonic() + 10)
    assert answer["outcome"] == "updated" and len(posts) == 2
    for sent in posts:  # the whole push each time: the spec and the archive
        assert json.loads(sent["spec"]) == spec
        assert sent["source"] == archive.read_bytes()
    said = capsys.readouterr()
    assert said.out == "" and "waiting for deploy a-b-main (job j1)" in said.err
    assert said.err.count("waiting") == 1 and "hush-hush" not in said.err


def test_a_push_gives_up_at_the_deadline_while_the_job_runs(
    archive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deploy, "WAIT_POLL_SECONDS", 0.01)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            body = {"code": "job_in_progress", "message": "busy", "detail": {"job": "j1"}}
            return httpx.Response(409, json=body)
        return httpx.Response(200, json={"id": "j1", "status": "running"})

    with pytest.raises(CliError, match="still running after --timeout") as caught:
        deploy.push(api_with(handler), {}, archive, deadline=time.monotonic() + 0.2)
    assert caught.value.exit_code == Exit.CONFLICT


def test_other_refusals_are_not_retried(archive: Path) -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        body = {"code": "hostname_taken", "message": "taken", "detail": {}}
        return httpx.Response(409, json=body)

    with pytest.raises(CliError, match="taken") as caught:
        deploy.push(api_with(handler), {}, archive, deadline=time.monotonic() + 10)
    assert caught.value.exit_code == Exit.CONFLICT and len(calls) == 1


class Quiet:
    def job(self, job: dict[str, Any]) -> None:
        pass

    def log(self, entry: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


def test_following_stops_at_the_deadline_on_a_quiet_stream() -> None:
    def keepalives() -> Iterator[bytes]:
        while True:  # a job that never ends: only the server's keep-alives come
            time.sleep(0.02)
            yield b": keep-alive\n\n"

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v1/jobs/j1/events/"
        return httpx.Response(200, content=keepalives())

    job = {"id": "j1", "status": "running"}
    follower = Follower(api_with(handler), job, Quiet(), deadline=time.monotonic() + 0.3)
    began = time.monotonic()
    with pytest.raises(CliError, match="gave up waiting: job j1 is still running") as caught:
        follower.run()
    assert caught.value.exit_code == Exit.ERROR and time.monotonic() - began < 3
    assert "portalctl jobs logs -f j1" in caught.value.details[0]


def test_the_app_log_reconnects_without_showing_a_line_twice(
    capsys: pytest.CaptureFixture[str],
) -> None:
    journal = ["a", "b", "c"]
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.params["lines"])
        if len(asked) == 3:
            body = {"code": "not_found", "message": "gone", "detail": {}}
            return httpx.Response(404, json=body)
        backlog = journal[-int(request.url.params["lines"]) :]
        if len(asked) == 2:
            journal.extend(["d", "b"])  # new lines while it was away; one repeats an old text
            backlog += ["d", "b"]
        sse = "retry: 3000\n\n" + "".join(f"event: line\ndata: {x}\n\n" for x in backlog)
        return httpx.Response(200, content=(sse + "event: end\ndata: {}\n\n").encode())

    with pytest.raises(CliError, match="gone") as caught:
        AppLog(api_with(handler), "a-b-main", 2, json_=False).run()
    assert caught.value.exit_code == Exit.NOT_FOUND
    # First the last 2 lines; after the stream's end, as many as were shown, skipped.
    assert asked == ["2", "2", "4"]
    assert capsys.readouterr().out.splitlines() == ["b", "c", "d", "b"]
