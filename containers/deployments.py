"""Deployments (LaunchPad, docs/launchpad.md): one branch or pull request of a repository
in exactly one container, created on the first push and updated in place after that.

`deployment_put` is what a push asks for. It takes the owner's row lock, so concurrent
pushes of one branch are served one after the other: the first makes the deployment and
its container (`container_create`, with its quota check and allocation) and the job that
deploys into it; the next finds the container busy (409, the client waits and pushes
again) or deploys its commit in place. The newest commit wins: a push whose commit time
is older than the one recorded changes nothing.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import IO, TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from auth.audit import audit_record
from auth.selectors import ssh_keys_text
from networking.models import RouteAccess
from portal.errors import (
    Conflict,
    ErrorCode,
    InvalidState,
    PermissionDenied,
    ValidationFailed,
)

from .deploy_key import deploy_public_key
from .deploy_names import deployment_name, is_pull_request
from .deploy_script import release_name, services_step
from .deploy_sources import source_discard, source_store
from .models import (
    ACTIVE_JOB_STATUSES,
    LIVE,
    Container,
    ContainerStatus,
    Deployment,
    DeploymentState,
    Job,
    JobKind,
    Template,
)
from .services import container_create, container_delete, job_create

if TYPE_CHECKING:
    from django.contrib.auth.models import User

ENV_MAX_BYTES = 64 * 1024
APP_KEYS = frozenset(
    {"install", "build", "start", "processes", "port", "health", "services", "access"}
)
PROCESS_NAME = re.compile(r"^[a-z][a-z0-9-]{0,29}$")
MAX_PROCESSES = 8
DEFAULT_PORT = 8000
COMMAND_MAX = 4000


@dataclass(frozen=True)
class PutResult:
    deployment: Deployment
    outcome: str  # created, updated or superseded
    job: Job | None  # the job that brings this commit


def deployment_put(
    *,
    actor: User,
    repository: str,
    ref: str,
    commit: str,
    template: Template,
    source: IO[bytes],
    app: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    committed_at: datetime | None = None,
    ttl_days: int | None = None,
) -> PutResult:
    """Deploy `commit` of `repository` at `ref`: a new deployment and container, or the
    existing one updated in place."""
    name = deployment_name(repository, ref)
    commit = _checked_commit(commit)
    app_value = _checked_app(app or {}, template)
    env_text = _checked_env(env or {})
    if ttl_days is None and is_pull_request(ref):
        ttl_days = settings.DEPLOY_PREVIEW_TTL_DAYS
    _check_ttl(ttl_days)
    stored = source_store(source, commit=commit)  # outside the locks: it may be large
    try:
        with transaction.atomic():
            # One push of this owner at a time: two pushes of one branch cannot both create.
            get_user_model().objects.select_for_update().filter(pk=actor.pk).values_list("pk").get()
            current = (
                Deployment.objects.select_for_update()
                .filter(owner=actor, repository=repository, ref=ref)
                .exclude(state=DeploymentState.REMOVED)
                .first()
            )
            late = current and committed_at and current.committed_at
            if current and late and committed_at < current.committed_at:  # type: ignore[operator]
                source_discard(stored)  # an older push, arrived late
                return PutResult(current, "superseded", None)
            deployment = current or Deployment(owner=actor, repository=repository, ref=ref)
            deployment.name, deployment.commit, deployment.committed_at = name, commit, committed_at
            deployment.app, deployment.env, deployment.ttl_days = app_value, env_text, ttl_days
            deployment.expires_at, deployment.warned_at = _expiry(ttl_days), None
            deployment.state, deployment.state_message = DeploymentState.QUEUED, ""
            deployment.save()
            params = {
                "deployment": deployment.pk,
                "repository": repository,
                "commit": commit,
                "release": release_name(commit, secrets.token_hex(4)),
                "source": stored,
                "app": app_value,
            }
            container = deployment_container(deployment)
            if container is None:
                job = _create(deployment, template=template, params=params)
            else:
                job = _update(deployment, container, params=params)
            outcome = "updated" if current else "created"
            _audit(actor, f"deployment.{'update' if current else 'create'}", deployment)
            return PutResult(deployment, outcome, job)
    except BaseException:
        source_discard(stored)
        raise


def _create(deployment: Deployment, *, template: Template, params: dict[str, Any]) -> Job:
    """Its container and the one job that creates it and deploys into it."""
    owner = deployment.owner
    keys = "\n".join(k for k in (ssh_keys_text(owner), deploy_public_key()) if k)
    job = container_create(
        owner=owner,
        hostname=deployment.name,
        template=template,
        ssh_public_keys=keys,
        description=f"LaunchPad: {deployment.repository} at {deployment.ref}",
        route_access=params["app"]["access"],
        route_port=params["app"]["port"],  # the publish step then has nothing to apply
        actor=owner,
        deploy=params,
    )
    deployment.container = job.container
    deployment.save(update_fields=["container", "updated_at"])
    return job


def _update(deployment: Deployment, container: Container, *, params: dict[str, Any]) -> Job:
    active = container.jobs.filter(status__in=ACTIVE_JOB_STATUSES).first()
    if active is not None:
        raise Conflict(
            f"{container.hostname} has a {active.kind} job in progress ({active.pk}); "
            "push again once it ends",
            code=ErrorCode.JOB_IN_PROGRESS,
            job=str(active.pk),
        )
    if container.status != ContainerStatus.RUNNING:
        raise InvalidState(
            f"{container.hostname} is {container.status}; start it, then push again",
            field="container",
        )
    return job_create(
        kind=JobKind.DEPLOY, container=container, actor=deployment.owner, params=params
    )


def deployment_container(deployment: Deployment) -> Container | None:
    """The deployment's container while it is live (not deleted)."""
    if deployment.container_id is None:
        return None
    return Container.objects.filter(LIVE, pk=deployment.container_id).first()


# -- what the deploy job reports ------------------------------------------------------------
def deployment_started(*, deployment: Deployment, job: Job) -> None:
    Deployment.objects.filter(pk=deployment.pk, commit=job.params["commit"]).update(
        state=DeploymentState.DEPLOYING, state_message="", updated_at=timezone.now()
    )


def deployment_live(*, deployment: Deployment, commit: str) -> None:
    Deployment.objects.filter(pk=deployment.pk).exclude(
        state__in=[DeploymentState.REMOVING, DeploymentState.REMOVED]
    ).update(
        state=DeploymentState.LIVE,
        serving_commit=commit,
        state_message="",
        updated_at=timezone.now(),
    )


def deployment_failed(*, deployment_id: int, message: str) -> None:
    Deployment.objects.filter(pk=deployment_id).exclude(
        state__in=[DeploymentState.REMOVING, DeploymentState.REMOVED]
    ).update(state=DeploymentState.FAILED, state_message=message[:500], updated_at=timezone.now())


# -- the owner's other requests -------------------------------------------------------------
def deployment_destroy(*, deployment: Deployment, actor: User, reason: str = "") -> Job | None:
    """Remove the deployment: its container's delete job (route, DNS name, access group go
    with it), or at once when it has no container left. `reason` goes into the audit."""
    _require_owner(actor, deployment)
    with transaction.atomic():
        deployment = Deployment.objects.select_for_update().get(pk=deployment.pk)
        if deployment.state == DeploymentState.REMOVED:
            raise InvalidState(f"{deployment.name} is already removed")
        container = deployment_container(deployment)
        job = None
        if container is not None and container.status != ContainerStatus.DELETING:
            job = container_delete(container=container, actor=actor)
        elif container is not None:
            job = container.jobs.filter(kind=JobKind.DELETE).order_by("-created_at").first()
        deployment.state = DeploymentState.REMOVING if container else DeploymentState.REMOVED
        deployment.state_message = reason[:500]
        deployment.save(update_fields=["state", "state_message", "updated_at"])
        _audit(actor, "deployment.destroy", deployment, reason=reason)
    return job


def deployment_extend(*, deployment: Deployment, actor: User, days: int) -> Deployment:
    """Move the expiry to `days` from now (the owner's or staff's choice, within policy)."""
    _require_owner(actor, deployment)
    if not isinstance(days, int) or not 1 <= days <= settings.DEPLOY_TTL_MAX_DAYS:
        raise ValidationFailed(f"extend by 1 to {settings.DEPLOY_TTL_MAX_DAYS} days", field="days")
    if deployment.state in (DeploymentState.REMOVING, DeploymentState.REMOVED):
        raise InvalidState(f"{deployment.name} is {deployment.state}")
    deployment.expires_at = timezone.now() + timedelta(days=days)
    deployment.warned_at = None
    deployment.save(update_fields=["expires_at", "warned_at", "updated_at"])
    audit_record(
        actor=actor,
        action="deployment.extend",
        obj=deployment,
        summary=f"{deployment.name} expires {deployment.expires_at:%Y-%m-%d %H:%M}",
        changes={"days": days},
    )
    return deployment


def _require_owner(actor: User, deployment: Deployment) -> None:
    if actor.pk != deployment.owner_id and not actor.is_staff:
        raise PermissionDenied("only its owner or staff may change a deployment")


# -- checks ------------------------------------------------------------------------------------
def _expiry(ttl_days: int | None) -> datetime | None:
    return None if ttl_days is None else timezone.now() + timedelta(days=ttl_days)


def _check_ttl(ttl_days: int | None) -> None:
    limit = settings.DEPLOY_TTL_MAX_DAYS
    if ttl_days is not None and (not isinstance(ttl_days, int) or not 1 <= ttl_days <= limit):
        raise ValidationFailed(f"ttl is 1 to {limit} days", field="ttl_days")


def _checked_commit(commit: str) -> str:
    value = (commit or "").strip().lower()
    if not 7 <= len(value) <= 40 or any(c not in "0123456789abcdef" for c in value):
        raise ValidationFailed("commit is a git commit id (7 to 40 hex digits)", field="commit")
    return value


def _checked_app(app: dict[str, Any], template: Template) -> dict[str, Any]:
    """The declared app, complete: each value checked, defaults filled in."""
    if not isinstance(app, dict):
        raise ValidationFailed("app is an object", field="app")
    unknown = set(app) - APP_KEYS
    if unknown:
        raise ValidationFailed(f"unknown app settings: {', '.join(sorted(unknown))}", field="app")
    value: dict[str, Any] = {}
    for key in ("install", "build", "start"):
        command = app.get(key) or ""
        if not isinstance(command, str) or "\n" in command or "\x00" in command:
            raise ValidationFailed(f"the {key} command is one line of text", field="app")
        if len(command) > COMMAND_MAX:
            raise ValidationFailed(f"the {key} command is too long", field="app")
        value[key] = command.strip()
    if not value["start"]:
        raise ValidationFailed("the app needs a start command", field="app")
    processes = _checked_processes(app.get("processes") or {})
    port = app.get("port", DEFAULT_PORT)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValidationFailed("the app's HTTP port is 1 to 65535", field="app")
    if port == 22:
        raise ValidationFailed("port 22 is the container's SSH", field="app")
    health = app.get("health") or "/"
    if not isinstance(health, str) or not health.startswith("/") or not health.isprintable():
        raise ValidationFailed("health is a path, e.g. /healthz", field="app")
    if " " in health or len(health) > 200:
        raise ValidationFailed("health is a path without spaces", field="app")
    services = app.get("services") or []
    if not isinstance(services, list) or not all(isinstance(s, str) for s in services):
        raise ValidationFailed("services is a list of names", field="app")
    services_step(template.os_type, services)  # a service the distribution lacks: said now
    access = app.get("access") or RouteAccess.PUBLIC
    if access not in RouteAccess.values:
        raise ValidationFailed(f"access is one of {', '.join(RouteAccess.values)}", field="app")
    return {
        **value,
        "processes": processes,
        "port": port,
        "health": health,
        "services": services,
        "access": access,
    }


def _checked_processes(processes: dict[str, Any]) -> dict[str, str]:
    """Other processes of the app (a worker, a scheduler): a unit each, `app-<name>`."""
    if not isinstance(processes, dict) or len(processes) > MAX_PROCESSES:
        raise ValidationFailed(
            f"processes is an object of at most {MAX_PROCESSES} names and commands", field="app"
        )
    for name, command in processes.items():
        if not isinstance(name, str) or not PROCESS_NAME.match(name):
            raise ValidationFailed(
                f"process name {name!r}: a-z, 0-9 and -, starting with a letter", field="app"
            )
        if not isinstance(command, str) or not command.strip() or "\n" in command:
            raise ValidationFailed(f"process {name}: its command is one line", field="app")
        if "\x00" in command or len(command) > COMMAND_MAX:
            raise ValidationFailed(f"process {name}: its command is not valid", field="app")
    return {name: command.strip() for name, command in sorted(processes.items())}


def _checked_env(env: dict[str, str]) -> str:
    """The env as the JSON text stored encrypted: names are shell variable names."""
    if not isinstance(env, dict):
        raise ValidationFailed("env is an object of names and values", field="env")
    for key, value in env.items():
        if not isinstance(key, str) or not key.isidentifier() or not key.isascii():
            raise ValidationFailed(f"env name {key!r} is not a variable name", field="env")
        if key in ("HOST", "PORT"):
            raise ValidationFailed(f"env {key} is set by the portal", field="env")
        if not isinstance(value, str) or "\n" in value or "\x00" in value:
            raise ValidationFailed(f"env {key}: the value must be one line of text", field="env")
    text = json.dumps(env, sort_keys=True)
    if len(text.encode()) > ENV_MAX_BYTES:
        raise ValidationFailed("env is larger than 64 KiB", field="env")
    return text


def _audit(actor: User, action: str, deployment: Deployment, *, reason: str = "") -> None:
    # Never the env: only its names.
    names = sorted(json.loads(deployment.env or "{}"))
    summary = f"{deployment.name} at {deployment.commit[:12]}"
    audit_record(
        actor=actor,
        action=action,
        obj=deployment,
        summary=f"{summary}: {reason}" if reason else summary,
        changes={"commit": deployment.commit, "env_names": names},
    )
