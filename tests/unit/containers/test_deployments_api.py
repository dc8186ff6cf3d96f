"""/api/v1/deployments/: the push's two parts, its answers and errors, who sees what,
extend and destroy. The deploy itself runs in tests/functional/launchpad."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from django.test import Client

from containers.models import Container, ContainerStatus, Deployment, Job, JobStatus
from tests.api_contract import check
from tests.factories import UserFactory, make_site

pytestmark = pytest.mark.django_db(transaction=True)

SHA = "0123456789abcdef0123456789abcdef01234567"
SPEC = {
    "repository": "acme/shop",
    "ref": "feature/Login",
    "commit": SHA,
    "app": {"start": "python3 app.py"},
    "env": {"SECRET_KEY": "hunter2-very-secret"},
}


def tarball(members: dict[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, body in (members or {"app.py": b"print(1)\n"}).items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return buffer.getvalue()


def push(client: Client, spec: dict | str | None = None, source: bytes | None = None, url=None):
    data: dict = {}
    if spec is not None:
        data["spec"] = spec if isinstance(spec, str) else json.dumps(spec)
    data["source"] = io.BytesIO(tarball() if source is None else source)
    data["source"].name = "source.tar.gz"
    if url:
        return client.put(url, data=_multipart(data), content_type=_BOUNDARY_TYPE)
    return client.post("/api/v1/deployments/", data=data)


_BOUNDARY = "BoUnDaRy"
_BOUNDARY_TYPE = f"multipart/form-data; boundary={_BOUNDARY}"


def _multipart(data: dict) -> bytes:
    from django.test.client import encode_multipart

    return encode_multipart(_BOUNDARY, data)


@pytest.fixture
def alice(no_jobs: None) -> Client:
    make_site(None).templates.update(os_type="debian")
    client = Client()
    client.force_login(UserFactory(username="alice"))
    return client


def test_a_push_answers_201_with_the_deployment_and_its_one_job(alice: Client) -> None:
    answer = check(push(alice, SPEC))
    assert answer.status_code == 201, answer.content
    body = answer.json()
    assert body["name"] == "acme-shop-feature-login"
    assert body["outcome"] == "created" and body["state"] == "queued"
    assert body["job"]["kind"] == "deploy" and body["job"]["status"] == "queued"
    assert body["env_names"] == ["SECRET_KEY"] and b"hunter2" not in answer.content
    assert body["app"] == {
        "install": "",
        "build": "",
        "start": "python3 app.py",
        "processes": {},
        "port": 8000,
        "health": "/",
        "services": [],
        "access": "public",
    }
    assert answer["Location"] == "/api/v1/deployments/acme-shop-feature-login/"
    # The archive waits for the worker, private to the portal.
    job = Job.objects.get()
    stored = Path(job.params["source"])
    assert stored.name.startswith(SHA) and "/" not in job.params["source"]


def test_a_second_push_while_the_first_runs_is_409_with_the_job(alice: Client) -> None:
    first = push(alice, SPEC).json()
    again = check(push(alice, {**SPEC, "commit": "f" * 40}))
    assert again.status_code == 409
    assert again.json()["code"] == "job_in_progress"
    assert again.json()["detail"]["job"] == first["job"]["id"]
    # Once it ended, the same push updates in place.
    Job.objects.update(status=JobStatus.SUCCEEDED)
    Container.objects.update(status=ContainerStatus.RUNNING)
    url = "/api/v1/deployments/acme-shop-feature-login/"
    updated = check(push(alice, {**SPEC, "commit": "f" * 40}, url=url))
    assert updated.status_code == 200 and updated.json()["outcome"] == "updated", updated.content
    assert Container.objects.count() == 1


@pytest.mark.parametrize(
    ("spec", "source", "code", "words"),
    [
        (None, None, "invalid", "part 'spec'"),
        ("{not json", None, "invalid", "spec is not JSON"),
        ({**SPEC, "repository": "no-slash"}, None, "invalid", "repository"),
        ({**SPEC, "env": {"A": "x\ny"}}, None, "invalid", "one line"),
        ({**SPEC, "app": {"start": "x", "services": ["oracle"]}}, None, "invalid", "oracle"),
        ({**SPEC, "template": "plan9"}, None, "invalid", "no template 'plan9'"),
        (SPEC, b"not a tarball", "invalid", "not a gzip'd tar"),
        (SPEC, tarball({"../escape": b"x"}), "invalid", "leaves the source tree"),
        (SPEC, tarball({"/etc/passwd": b"x"}), "invalid", "leaves the source tree"),
    ],
    # Named, not derived from the values: a gzip'd source carries its time, and every
    # pytest-xdist process must collect the same ids.
    ids=[
        "no-spec",
        "spec-not-json",
        "bad-repository",
        "env-two-lines",
        "unknown-service",
        "unknown-template",
        "not-a-tarball",
        "dotdot-member",
        "absolute-member",
    ],
)
def test_a_bad_push_is_refused_whole_with_a_clear_error(
    alice: Client, spec, source, code, words
) -> None:
    answer = check(push(alice, spec, source))
    assert answer.status_code == 400, answer.content
    assert answer.json()["code"] == code and words in answer.json()["message"]
    assert not Deployment.objects.exists() and not Container.objects.exists()


def test_put_checks_the_name_against_the_rule(alice: Client) -> None:
    answer = check(push(alice, SPEC, url="/api/v1/deployments/something-else/"))
    assert answer.status_code == 400 and answer.json()["code"] == "name_mismatch"
    assert "'acme-shop-feature-login'" in answer.json()["message"]


def test_others_see_404_staff_see_all_and_destroy_extend_work(alice: Client) -> None:
    push(alice, SPEC)
    url = "/api/v1/deployments/acme-shop-feature-login/"
    bob = Client()
    bob.force_login(UserFactory(username="bob"))
    assert check(bob.get(url)).status_code == 404
    assert check(bob.delete(url)).status_code == 404
    assert check(bob.get("/api/v1/deployments/")).json()["results"] == []
    staff = Client()
    staff.force_login(UserFactory(username="root", is_staff=True))
    assert check(staff.get(url)).status_code == 200

    extended = check(alice.post(f"{url}extend/", {"days": 3}, content_type="application/json"))
    assert extended.status_code == 200 and extended.json()["expires_at"]
    too_long = check(alice.post(f"{url}extend/", {"days": 9999}, content_type="application/json"))
    assert too_long.status_code == 400

    Job.objects.update(status=JobStatus.SUCCEEDED)
    Container.objects.update(status=ContainerStatus.RUNNING)
    gone = check(alice.delete(url))
    assert gone.status_code == 202 and gone.json()["job"]["kind"] == "delete"
    assert Deployment.objects.get().state == "removing"
    listed = check(alice.get("/api/v1/deployments/?repository=acme/shop")).json()["results"]
    assert [d["state"] for d in listed] == ["removing"]


def test_a_pull_request_expires_after_the_preview_ttl(alice: Client, settings) -> None:
    settings.DEPLOY_PREVIEW_TTL_DAYS = 2
    body = check(push(alice, {**SPEC, "ref": "pr-17"})).json()
    assert body["name"] == "acme-shop-pr-17" and body["pull_request"] == 17
    assert body["ttl_days"] == 2 and body["expires_at"]
    branch = check(push(alice, {**SPEC, "ref": "main"})).json()
    assert branch["expires_at"] is None
