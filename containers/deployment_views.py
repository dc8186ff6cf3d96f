"""The LaunchPad pages (docs/launchpad.md): the deployments a user may see, one
deployment with its settings, history and logs, and its Extend and Destroy forms.

Thin: reads through `deployment_selectors`, writes through the services of
`containers.deployments`. Another user's deployment is 404, as in the API.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from portal import formstash
from portal.actors import acting_user
from portal.errors import NotFound, PortalError

from . import deployment_selectors, deployments
from .forms import DeleteForm, ExtendForm, add_portal_error
from .models import Deployment, DeploymentState

PAGE_SIZE = 50
# States in which a deployment can still be extended or destroyed.
ENDING = (DeploymentState.REMOVING, DeploymentState.REMOVED)
EXTEND, DESTROY = "extend", "destroy"


@login_required
@require_GET
def deployment_list(request: HttpRequest) -> HttpResponse:
    user = acting_user(request)
    state = request.GET.get("state", "")
    state = state if state in DeploymentState.values else ""
    page = Paginator(deployment_selectors.deployments_for(user, state=state), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    return render(
        request,
        "containers/deployments.html",
        {"page": page, "state": state, "states": DeploymentState.choices},
    )


def _get(request: HttpRequest, name: str) -> Deployment:
    try:
        return deployment_selectors.deployment_get(acting_user(request), name)
    except NotFound:
        raise Http404("no such deployment") from None


def _stash_name(form: str, deployment: Deployment) -> str:
    return f"deployment:{deployment.pk}:{form}"


@login_required
@require_GET
def deployment_detail(request: HttpRequest, name: str) -> HttpResponse:
    deployment = _get(request, name)
    job = deployment_selectors.deployment_job(deployment, request.GET.get("job", ""))
    if job is None and request.GET.get("job"):
        raise Http404("no such job of this deployment")
    name, container = deployment.name, deployment.container
    return render(
        request,
        "containers/deployment_detail.html",
        {
            "d": deployment,
            "name": name,
            "url": deployment_selectors.deployment_url(deployment),
            "c": container if container is not None and container.is_live else None,
            "container": container,
            "pull_request": deployment_selectors.pull_request_number(deployment),
            "app": deployment_selectors.deployment_app(deployment),
            "env_names": deployment_selectors.deployment_env_names(deployment),
            "jobs": deployment_selectors.deployment_jobs(deployment),
            "job": job,
            "active": deployment.state not in ENDING,
            "ttl_max": settings.DEPLOY_TTL_MAX_DAYS,
            # The runtime log is the API's (app.js fetches it, or follows it as SSE).
            "logs_url": reverse("api:deployment-logs", args=[name]),
            **_forms(request, deployment, name),
        },
    )


def _forms(request: HttpRequest, deployment: Deployment, name: str) -> dict[str, Any]:
    """Extend and Destroy as they failed (portal.formstash), or fresh."""
    extend = formstash.restore(request, _stash_name(EXTEND, deployment), ExtendForm)
    destroy = formstash.restore(
        request, _stash_name(DESTROY, deployment), DeleteForm, hostname=name
    )
    return {
        "extend_form": extend or ExtendForm(),
        "destroy_form": destroy or DeleteForm(hostname=name),
    }


def _back(name: str, section: str) -> HttpResponse:
    return redirect(f"{reverse('deployment-detail', args=[name])}#{section}")


@login_required
@require_POST
def deployment_extend(request: HttpRequest, name: str) -> HttpResponse:
    """Move the expiry to now + the days asked for (the service checks the bounds)."""
    deployment = _get(request, name)
    form = ExtendForm(request.POST)
    if form.is_valid():
        try:
            deployments.deployment_extend(
                deployment=deployment, actor=acting_user(request), days=form.cleaned_data["days"]
            )
        except PortalError as exc:
            add_portal_error(form, exc)
        else:
            days = form.cleaned_data["days"]
            messages.success(
                request, f"{name} now expires in {days} day{'s' if days != 1 else ''}."
            )
            return _back(name, "expiry-h")
    formstash.stash(request, _stash_name(EXTEND, deployment), form)
    return _back(name, "expiry-h")


@login_required
@require_POST
def deployment_destroy(request: HttpRequest, name: str) -> HttpResponse:
    """Remove the deployment and its container, once its name is typed to confirm."""
    deployment = _get(request, name)
    form = DeleteForm(request.POST, hostname=name)
    if form.is_valid():
        try:
            job = deployments.deployment_destroy(deployment=deployment, actor=acting_user(request))
        except PortalError as exc:
            add_portal_error(form, exc)
        else:
            if job is None:  # its container was gone already: removed at once
                messages.info(request, f"{name} is removed.")
                return redirect("deployment-list")
            messages.info(request, f"Removing {name}: follow it below.")
            return _back(name, "job-h")
    formstash.stash(request, _stash_name(DESTROY, deployment), form)
    return _back(name, "destroy-h")
