"""Reads of LaunchPad deployments (docs/launchpad.md) for the API and the pages: who sees
which, one by name, the list's rows, the deploy history, one job of it, and what of a
deployment's settings may be shown (the env's names, never its values).

A user sees only their own deployments; staff see all; anything else is NotFound (the
pages answer 404, never "forbidden").
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from portal.errors import NotFound, ValidationFailed

from .deploy_names import pull_request_number as _pr_number
from .models import Deployment, DeploymentState, Job, JobKind, Template

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

# The jobs that make up a deployment's history: its container's create, then each deploy.
HISTORY_KINDS = (JobKind.CREATE, JobKind.DEPLOY)
# The app settings shown, in this order, with the contract's defaults (an app stored
# before the service filled them in shows them too).
APP_DEFAULTS: dict[str, Any] = {
    "install": "",
    "build": "",
    "start": "",
    "processes": {},
    "port": 8000,
    "health": "/",
    "services": [],
    "access": "public",
}


def deployments_visible_to(
    user: User | AnonymousUser, *, include_removed: bool = False
) -> QuerySet[Deployment]:
    """Staff see every deployment; others their own. One query, however many there are."""
    qs = Deployment.objects.select_related(
        "owner", "container__site", "container__node", "container__owner"
    ).prefetch_related("container__port_mappings")
    if not include_removed:
        qs = qs.exclude(state=DeploymentState.REMOVED)
    if getattr(user, "is_staff", False):
        return qs
    if not user.is_authenticated:
        return qs.none()
    return qs.filter(owner=user)


def deployment_get(user: User | AnonymousUser, name: str) -> Deployment:
    """The deployment `name` the user may see: the current one, else its latest removed one."""
    qs = deployments_visible_to(user, include_removed=True).filter(name=name)
    found = qs.exclude(state=DeploymentState.REMOVED).first() or qs.order_by("-updated_at").first()
    if found is None:
        raise NotFound(f"no deployment '{name}'")
    return found


def deployment_latest_job(deployment: Deployment) -> Job | None:
    if deployment.container_id is None:
        return None
    return Job.objects.filter(container_id=deployment.container_id).order_by("-created_at").first()


def template_for_deploy(name: str | int | None) -> Template:
    """The template a push names (its name or id), or the portal's default for deploys."""
    qs = Template.objects.select_related("site").filter(enabled=True)
    wanted = name or settings.DEPLOY_DEFAULT_TEMPLATE
    if isinstance(wanted, int) or (isinstance(wanted, str) and wanted.isdigit()):
        found = qs.filter(pk=int(wanted)).first()
    elif wanted:
        found = qs.filter(name=wanted).order_by("site_id").first()
    else:
        found = qs.order_by("site_id", "name").first()
    if found is None:
        names = ", ".join(qs.values_list("name", flat=True).distinct()) or "none"
        raise ValidationFailed(f"no template '{wanted}' (available: {names})", field="template")
    return found


def deployments_for(user: User | AnonymousUser, *, state: str = "") -> QuerySet[Deployment]:
    """The list page's rows, with their owners, containers and sites: a fixed number of
    queries whatever their number. Removed deployments only when `state` asks for them."""
    removed = state == DeploymentState.REMOVED
    qs = deployments_visible_to(user, include_removed=removed)
    if state in DeploymentState.values:
        qs = qs.filter(state=state)
    return qs.order_by("repository", "ref", "-created_at")


def deployment_url(deployment: Deployment) -> str:
    """The app's address while its container lives, else ""."""
    container = deployment.container
    return container.url if container is not None and container.is_live else ""


def pull_request_number(deployment: Deployment) -> int | None:
    return _pr_number(deployment.ref)


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
    if not job_id:
        return deployment_latest_job(deployment)
    if deployment.container_id is None:
        return None
    try:
        return (
            Job.objects.filter(container_id=deployment.container_id, pk=job_id)
            .select_related("actor")
            .first()
        )
    except (ValidationError, ValueError):  # not a job id at all
        return None


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
