"""Reads for the LaunchPad pages (docs/launchpad.md): which deployments a user may see,
one by its name, its deploy history and what of its settings may be shown.

A user sees only their own deployments; staff see all; anything else is NotFound (the
pages answer 404, never "forbidden"). A deployment's name is its container's hostname.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db.models import Case, IntegerField, QuerySet, Value, When

from portal.errors import NotFound, ValidationFailed

from .deploy_names import deployment_name, is_pull_request
from .models import Deployment, DeploymentState, Job, JobKind

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

# The jobs that make up a deployment's history: its container's create, then each deploy
# ("deploy" is a registered kind, containers/jobs/deploy.py, so JobKind has no member).
DEPLOY_KIND = "deploy"
HISTORY_KINDS = (JobKind.CREATE, DEPLOY_KIND)
# The app settings shown, in this order, with the contract's defaults.
APP_DEFAULTS: dict[str, Any] = {
    "install": "",
    "build": "",
    "start": "",
    "port": 8000,
    "health": "/",
    "services": [],
    "access": "public",
}


def _visible(user: User | AnonymousUser) -> QuerySet[Deployment]:
    """Staff see every deployment; others their own. The joins a row needs (its owner, its
    container and the container's site) come in the same query."""
    qs = Deployment.objects.select_related("owner", "container", "container__site")
    if getattr(user, "is_staff", False):
        return qs
    if not user.is_authenticated:
        return qs.none()
    return qs.filter(owner=user)


def deployments_for(user: User | AnonymousUser, *, state: str = "") -> QuerySet[Deployment]:
    """The list page's rows: one query whatever their number. Removed deployments only
    when `state` asks for them."""
    qs = _visible(user)
    if state in DeploymentState.values:
        qs = qs.filter(state=state)
    else:
        qs = qs.exclude(state=DeploymentState.REMOVED)
    return qs.order_by("repository", "ref", "-created_at")


def deployment_get(user: User | AnonymousUser, name: str) -> Deployment:
    """The deployment called `name` that the user may see: the current one, or else the
    newest removed one (its page is its history). With its container's SSH mapping."""
    found = (
        _visible(user)
        .filter(container__hostname=name)
        .select_related("container__owner")
        .prefetch_related("container__port_mappings")
        .annotate(
            gone=Case(
                When(state=DeploymentState.REMOVED, then=Value(1)),
                default=Value(0),
                output_field=IntegerField(),
            )
        )
        .order_by("gone", "-created_at")
        .first()
    )
    if found is None:
        raise NotFound(f"no deployment {name}")
    return found


def deployment_name_of(deployment: Deployment) -> str:
    """Its container's hostname; the rule's name if the container row is gone."""
    if deployment.container is not None:
        return deployment.container.hostname
    try:
        return deployment_name(deployment.repository, deployment.ref)
    except ValidationFailed:
        return f"{deployment.repository}@{deployment.ref}"


def deployment_url(deployment: Deployment) -> str:
    """The app's address while its container lives, else ""."""
    container = deployment.container
    return container.url if container is not None and container.is_live else ""


def pull_request_number(deployment: Deployment) -> int | None:
    return int(deployment.ref[3:]) if is_pull_request(deployment.ref) else None


def deployment_jobs(deployment: Deployment, *, limit: int = 20) -> list[Job]:
    """Its container's create and deploys, newest first."""
    if deployment.container_id is None:
        return []
    return list(
        Job.objects.filter(container_id=deployment.container_id, kind__in=HISTORY_KINDS)
        .select_related("actor")
        .order_by("-created_at")[:limit]
    )


def deployment_job(deployment: Deployment, job_id: str = "") -> Job | None:
    """One job of its container (`job_id`), or its latest job of any kind (a destroy's
    delete too). None: no such job of this deployment."""
    if deployment.container_id is None:
        return None
    jobs = Job.objects.filter(container_id=deployment.container_id).select_related(
        "container", "actor"
    )
    try:
        if job_id:
            return jobs.filter(pk=job_id).first()
    except (ValidationError, ValueError):
        return None
    return jobs.order_by("-created_at").first()


def deployment_env_names(deployment: Deployment) -> list[str]:
    """The names of its env, sorted; its values are never read out for a page."""
    try:
        env = json.loads(deployment.env or "{}")
    except ValueError:
        return []
    return sorted(env) if isinstance(env, dict) else []


def deployment_app(deployment: Deployment) -> list[tuple[str, Any]]:
    """Its app settings as (name, value) with the contract's defaults filled in."""
    app = deployment.app if isinstance(deployment.app, dict) else {}
    shown = [(key, app.get(key, default)) for key, default in APP_DEFAULTS.items()]
    extra = sorted((k, v) for k, v in app.items() if k not in APP_DEFAULTS)
    return shown + extra
