"""Deployments: one container per branch whatever the pushes do, the newest commit wins,
the env stays secret, and the quota applies as to any container."""

from __future__ import annotations

import io
import tarfile
import threading
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from auth.models import AuditEntry, GroupPolicy
from containers.deployments import deployment_put
from containers.models import Container, ContainerStatus, Deployment, Job, JobKind, JobStatus
from portal.errors import Conflict, QuotaExceeded, ValidationFailed
from tests.factories import UserFactory, make_site

pytestmark = pytest.mark.django_db(transaction=True)

SHA = "0123456789abcdef0123456789abcdef01234567"
APP = {"start": "python3 app.py", "port": 8000}


def archive() -> io.BytesIO:
    """A commit's tree as git archive --format=tar.gz gives it."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        body = b"print('hello')\n"
        info = tarfile.TarInfo("app.py")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    buffer.seek(0)
    return buffer


def jobs_done() -> None:
    """What the worker would have done: the jobs ended, the containers run."""
    Job.objects.update(status=JobStatus.SUCCEEDED)
    Container.objects.update(status=ContainerStatus.RUNNING)


def test_five_concurrent_pushes_of_one_branch_make_one_container(no_jobs: None) -> None:
    site = make_site(None)
    owner = UserFactory(username="dana")
    template = site.templates.get()
    start = threading.Barrier(5)
    results, busy, errors = [], [], []

    def push(n: int) -> None:
        try:
            start.wait()
            results.append(
                deployment_put(
                    actor=owner,
                    repository="acme/shop",
                    ref="main",
                    commit=f"{n:x}" * 8,
                    template=template,
                    source=archive(),
                    app=APP,
                )
            )
        except Conflict as exc:  # the first push's job is still running: push again later
            busy.append(exc)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=push, args=(n,)) for n in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert [r.outcome for r in results] == ["created"]
    assert len(busy) == 4 and all(e.code == "job_in_progress" for e in busy)
    assert Deployment.objects.count() == 1
    assert list(Container.objects.values_list("hostname", flat=True)) == ["acme-shop-main"]
    job = Job.objects.get()
    assert job.kind == JobKind.DEPLOY and job.params["create"] is True
    # One job: the create's steps, then the deploy's.
    names = [s["name"] for s in job.steps]
    assert names[0] == "create" and names[-1] == "publish" and "install" in names
    # The deploy key is among the container's keys, with the owner's.
    assert "cluster-portal-deploy" in Container.objects.get().ssh_public_keys


def test_the_newest_commit_wins_and_a_late_older_push_changes_nothing(no_jobs: None) -> None:
    site = make_site(None)
    owner = UserFactory(username="eve")
    now = timezone.now()
    kwargs = {
        "actor": owner,
        "repository": "acme/shop",
        "ref": "dev",
        "template": site.templates.get(),
        "app": APP,
    }
    first = deployment_put(commit="a" * 40, committed_at=now, source=archive(), **kwargs)
    jobs_done()
    newer = deployment_put(
        commit="b" * 40, committed_at=now + timedelta(minutes=1), source=archive(), **kwargs
    )
    jobs_done()
    late = deployment_put(
        commit="c" * 40, committed_at=now - timedelta(minutes=1), source=archive(), **kwargs
    )
    assert (first.outcome, newer.outcome, late.outcome) == ("created", "updated", "superseded")
    assert late.job is None and newer.job is not None
    # The update is a deploy job on the same container: never another container.
    assert newer.job.kind == JobKind.DEPLOY and "create" not in newer.job.params
    assert newer.job.container_id == first.deployment.container_id
    row = Deployment.objects.get()
    assert row.commit == "b" * 40 and row.container == first.deployment.container
    assert Container.objects.count() == 1


def test_env_is_encrypted_and_never_in_the_audit(no_jobs: None) -> None:
    from django.db import connection

    site = make_site(None)
    owner = UserFactory(username="fay")
    deployment_put(
        actor=owner,
        repository="acme/shop",
        ref="main",
        commit=SHA,
        template=site.templates.get(),
        source=archive(),
        app=APP,
        env={"DATABASE_URL": "postgres://u:hunter2@db/x"},
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT env FROM containers_deployment")
        (stored,) = cursor.fetchone()
    assert "hunter2" not in stored
    assert Deployment.objects.get().env == '{"DATABASE_URL": "postgres://u:hunter2@db/x"}'
    entry = AuditEntry.objects.get(action="deployment.create")
    assert "hunter2" not in str(entry.changes) + entry.summary
    assert entry.changes["env_names"] == ["DATABASE_URL"]


def test_bad_input_is_refused_whole(no_jobs: None) -> None:
    site = make_site(None)
    owner = UserFactory(username="gus")
    base = {
        "actor": owner,
        "repository": "acme/shop",
        "ref": "main",
        "template": site.templates.get(),
    }
    for commit, env, app in (
        ("not-a-sha", None, APP),
        (SHA, {"BAD NAME": "x"}, APP),
        (SHA, {"A": "two\nlines"}, APP),
        (SHA, {"PORT": "1"}, APP),
        (SHA, None, {**APP, "port": 70000}),
        (SHA, None, {**APP, "shell": "rm -rf /"}),
        (SHA, None, {"port": 8000}),
        (SHA, None, {**APP, "services": ["mongodb"]}),  # not in Debian's archive
        (SHA, None, {**APP, "access": "everyone"}),
        (SHA, None, {**APP, "start": "a\nb"}),
        (SHA, None, {**APP, "processes": {"Bad Name": "x"}}),
        (SHA, None, {**APP, "processes": {"worker": ""}}),
        (SHA, None, {**APP, "processes": ["worker"]}),
    ):
        with pytest.raises(ValidationFailed):
            deployment_put(commit=commit, env=env, app=app, source=archive(), **base)
    assert not Deployment.objects.exists() and not Container.objects.exists()


def test_a_deployment_over_quota_fails_with_the_quotas_own_message(no_jobs: None) -> None:
    site = make_site(None)
    owner = UserFactory(username="hal")
    GroupPolicy.objects.create(group=None, max_containers=0)
    with pytest.raises(QuotaExceeded, match="quota exceeded: containers"):
        deployment_put(
            actor=owner,
            repository="acme/shop",
            ref="main",
            commit=SHA,
            template=site.templates.get(),
            source=archive(),
            app=APP,
        )
    assert not Deployment.objects.exists()


def test_a_new_deployment_s_web_address_points_at_the_app_s_port_from_the_start(
    no_jobs: None,
) -> None:
    """Its route is made for the app's port and access when the container is, so the
    deploy's publish step finds nothing to change: the create's gateway apply is the
    only one (bench.launchpad: a second apply cost ~0.4 s of every first push)."""
    from networking.models import Route
    from networking.services import container_route_point

    site = make_site(None)
    owner = UserFactory(username="dana")
    result = deployment_put(
        actor=owner,
        repository="acme/shop",
        ref="main",
        commit=SHA,
        template=site.templates.get(),
        source=archive(),
        app={**APP, "port": 8123, "access": "public"},
    )
    container = result.deployment.container
    route = Route.objects.get(container=container, name="")
    assert (route.backend_port, route.access, route.enabled) == (8123, "public", True)
    assert container_route_point(container=container, backend_port=8123, access="public") is None
