"""Deployments (LaunchPad, issue #15): one branch or pull request of a repository in
exactly one container, created on the first push and updated in place after that.

`deployment_put` is what a push asks for. It takes the owner's row lock, so concurrent
pushes of one branch are served one after the other: the first makes the deployment and
its container (`container_create`, with its quota check and allocation), the others find
it. The newest commit wins: a push whose commit time is older than the one recorded
changes nothing. The deploy itself (the job that brings the commit into the container)
is the next step of #15; until it exists a deployment records what was asked for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from auth.audit import audit_record
from portal.errors import ValidationFailed

from .deploy_names import deployment_name
from .models import LIVE, Container, Deployment, DeploymentState, Job, Template
from .services import container_create

if TYPE_CHECKING:
    from django.contrib.auth.models import User

ENV_MAX_BYTES = 64 * 1024
APP_KEYS = frozenset({"install", "build", "start", "port", "services"})


@dataclass(frozen=True)
class PutResult:
    deployment: Deployment
    created: bool
    job: Job | None  # the container's create job, for a new deployment


def deployment_put(
    *,
    actor: User,
    repository: str,
    ref: str,
    commit: str,
    template: Template,
    app: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    committed_at: datetime | None = None,
    ttl_days: int | None = None,
) -> PutResult:
    """Create the deployment of `repository` at `ref`, or record a newer commit for it."""
    name = deployment_name(repository, ref)
    commit = _checked_commit(commit)
    app_value = _checked_app(app or {})
    env_text = _checked_env(env or {})
    with transaction.atomic():
        # One push of this owner at a time: two pushes of one branch cannot both create.
        get_user_model().objects.select_for_update().filter(pk=actor.pk).values_list("pk").get()
        current = (
            Deployment.objects.select_for_update()
            .filter(owner=actor, repository=repository, ref=ref)
            .exclude(state=DeploymentState.REMOVED)
            .first()
        )
        if current is not None:
            late = committed_at and current.committed_at and committed_at < current.committed_at
            if late:
                return PutResult(current, created=False, job=None)  # an older push, arrived late
            current.commit, current.app, current.env = commit, app_value, env_text
            current.committed_at = committed_at
            current.expires_at = _expiry(ttl_days)
            current.save(
                update_fields=["commit", "committed_at", "app", "env", "expires_at", "updated_at"]
            )
            _audit(actor, "deployment.update", current, f"{name} at {commit[:12]}")
            return PutResult(current, created=False, job=None)
        job = container_create(owner=actor, hostname=name, template=template, actor=actor)
        deployment = Deployment.objects.create(
            owner=actor,
            repository=repository,
            ref=ref,
            container=job.container,
            commit=commit,
            committed_at=committed_at,
            app=app_value,
            env=env_text,
            expires_at=_expiry(ttl_days),
        )
        _audit(actor, "deployment.create", deployment, f"{name} at {commit[:12]}")
        return PutResult(deployment, created=True, job=job)


def deployment_container(deployment: Deployment) -> Container | None:
    """The deployment's container while it is live (not deleted)."""
    if deployment.container_id is None:
        return None
    return Container.objects.filter(LIVE, pk=deployment.container_id).first()


def _expiry(ttl_days: int | None) -> datetime | None:
    if ttl_days is None:
        return None
    if not 1 <= ttl_days <= 365:
        raise ValidationFailed("ttl is 1 to 365 days", field="ttl_days")
    return timezone.now() + timedelta(days=ttl_days)


def _checked_commit(commit: str) -> str:
    value = (commit or "").strip().lower()
    if not 7 <= len(value) <= 40 or any(c not in "0123456789abcdef" for c in value):
        raise ValidationFailed("commit is a git commit id (7 to 40 hex digits)", field="commit")
    return value


def _checked_app(app: dict[str, Any]) -> dict[str, Any]:
    unknown = set(app) - APP_KEYS
    if unknown:
        raise ValidationFailed(f"unknown app settings: {', '.join(sorted(unknown))}", field="app")
    port = app.get("port")
    if port is not None and (not isinstance(port, int) or not 1 <= port <= 65535):
        raise ValidationFailed("the app's HTTP port is 1 to 65535", field="app")
    return dict(app)


def _checked_env(env: dict[str, str]) -> str:
    """The env as the JSON text stored encrypted: names are shell variable names."""
    for key, value in env.items():
        if not isinstance(key, str) or not key.isidentifier() or not key.isascii():
            raise ValidationFailed(f"env name {key!r} is not a variable name", field="env")
        if not isinstance(value, str) or "\n" in value or "\x00" in value:
            raise ValidationFailed(f"env {key}: the value must be one line of text", field="env")
    text = json.dumps(env, sort_keys=True)
    if len(text.encode()) > ENV_MAX_BYTES:
        raise ValidationFailed("env is larger than 64 KiB", field="env")
    return text


def _audit(actor: User, action: str, deployment: Deployment, summary: str) -> None:
    # Never the env: only its names.
    names = sorted(json.loads(deployment.env or "{}"))
    audit_record(
        actor=actor,
        action=action,
        obj=deployment,
        summary=summary,
        changes={"commit": deployment.commit, "env_names": names},
    )
