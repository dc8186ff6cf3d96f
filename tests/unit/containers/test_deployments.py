"""Deployments: one container per branch whatever the pushes do, the newest commit wins,
the env stays secret, and the quota applies as to any container."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from auth.models import AuditEntry, GroupPolicy
from containers.deployments import deployment_put
from containers.models import Container, Deployment
from portal.errors import QuotaExceeded, ValidationFailed
from tests.factories import UserFactory, make_site

pytestmark = pytest.mark.django_db(transaction=True)

SHA = "0123456789abcdef0123456789abcdef01234567"


def test_five_concurrent_pushes_of_one_branch_make_one_container(no_jobs: None) -> None:
    site = make_site(None)
    owner = UserFactory(username="dana")
    template = site.templates.get()
    start = threading.Barrier(5)
    results, errors = [], []

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
                )
            )
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
    assert sum(r.created for r in results) == 1
    assert Deployment.objects.count() == 1
    assert list(Container.objects.values_list("hostname", flat=True)) == ["acme-shop-main"]


def test_the_newest_commit_wins_and_a_late_older_push_changes_nothing(no_jobs: None) -> None:
    site = make_site(None)
    owner = UserFactory(username="eve")
    now = timezone.now()
    kwargs = {
        "actor": owner,
        "repository": "acme/shop",
        "ref": "dev",
        "template": site.templates.get(),
    }
    first = deployment_put(commit="a" * 40, committed_at=now, **kwargs)
    newer = deployment_put(commit="b" * 40, committed_at=now + timedelta(minutes=1), **kwargs)
    late = deployment_put(commit="c" * 40, committed_at=now - timedelta(minutes=1), **kwargs)
    assert first.created and not newer.created and not late.created
    row = Deployment.objects.get()
    assert row.commit == "b" * 40 and row.container == first.deployment.container


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
        ("not-a-sha", None, None),
        (SHA, {"BAD NAME": "x"}, None),
        (SHA, {"A": "two\nlines"}, None),
        (SHA, None, {"port": 70000}),
        (SHA, None, {"shell": "rm -rf /"}),
    ):
        with pytest.raises(ValidationFailed):
            deployment_put(commit=commit, env=env, app=app, **base)
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
        )
    assert not Deployment.objects.exists()
