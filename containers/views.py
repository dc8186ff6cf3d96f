"""The web GUI: thin views over the same selectors and services as the API."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from auth import selectors as accounts_selectors
from auth.models import RequestKind
from auth.selectors import CONTAINER_ACTIONS
from containers import collaborators
from networking import publishing as network
from networking import selectors as networking_selectors
from networking.models import RouteAccess
from portal import formstash
from portal.actors import acting_user
from portal.api.base import parse_id
from portal.errors import ErrorCode, NotFound, PortalError, ValidationFailed

from . import failed_creates, resource_requests, selectors, services
from .container_expiry import container_extend
from .forms import (
    RESOURCE_FIELDS,
    CollaboratorForm,
    ContainerCreateForm,
    ContainerExtendForm,
    ContainerResizeForm,
    DeleteForm,
    ResizeRequestForm,
    add_portal_error,
)
from .metrics.alerts import open_alerts
from .metrics.history import CONSOLIDATIONS, TIMEFRAMES
from .metrics.models import AlertKind
from .models import Container, ContainerStatus, Job, Template
from .validation import container_create_check, hostname_taken, normalise_hostname
from .wazuh.security import container_security

PAGE_SIZE = 50


def _filter_text(value: str) -> str:
    """A list filter as typed, less what no name can hold (NUL, other control characters),
    and no longer than any name."""
    return "".join(ch for ch in value if ch.isprintable()).strip()[:200]


@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    user = acting_user(request)
    filters = {k: _filter_text(request.GET.get(k, "")) for k in ("q", "status", "node", "owner")}
    sort = request.GET.get("sort", "")
    sort = sort if sort.removeprefix("-") in selectors.DASHBOARD_SORTS else ""
    qs = selectors.dashboard_containers(user, **filters, sort=sort)
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    kept = {k: v for k, v in filters.items() if v}
    return render(
        request,
        "containers/dashboard.html",
        {
            "page": page,
            "failed": selectors.failed_creates_for(user),
            "filters": filters,
            "statuses": ContainerStatus.choices,
            "query": urlencode({**kept, **({"sort": sort} if sort else {})}),
            "sorts": {key: _sort_link(kept, key, sort) for key in selectors.DASHBOARD_SORTS},
            "nodes_down": networking_selectors.nodes_down(),
        },
    )


def _sort_link(filters: dict[str, str], key: str, current: str) -> dict[str, str]:
    """A column header's link (busiest first, then the other way on a second click) and
    its aria-sort state."""
    state = {f"-{key}": "descending", key: "ascending"}.get(current, "none")
    target = key if current == f"-{key}" else f"-{key}"
    return {"url": "?" + urlencode({**filters, "sort": target}), "state": state}


@login_required
def container_create(request: HttpRequest) -> HttpResponse:
    user = acting_user(request)
    # The profile's SSH keys are the default; the user may edit them for this container.
    form = ContainerCreateForm(
        request.POST or None, initial={"ssh_public_keys": accounts_selectors.ssh_keys_text(user)}
    )
    if request.method == "POST":
        job = _create_from_form(form, user)
        if job is not None:
            assert job.container is not None
            messages.success(request, f"Creating {job.container.hostname}: follow it below.")
            return redirect("container-detail", pk=job.container.pk)
    templates = selectors.templates_enabled()
    resource_fields = [form[name] for name in RESOURCE_FIELDS]
    context = {
        "form": form,
        "templates": templates,
        "resource_fields": resource_fields,
        "quota": _quota_rows(user),
        "nodes_down": networking_selectors.nodes_down(),
    }
    return render(request, "containers/create.html", context, status=400 if form.errors else 200)


def _create_from_form(form: ContainerCreateForm, user: User) -> Job | None:
    """Create from a posted form, or put every error in the form: the form's own (a number
    that is not one) and the service's (limits, name, keys) together, in one answer."""
    valid = form.is_valid()
    data = form.cleaned_data
    template: Template | None = data.get("template")
    values: dict[str, Any] = {
        "owner": user,
        "hostname": data.get("hostname", ""),
        "template": template,
        "site": template.site if template else None,
        **{name: data.get(name) for name in RESOURCE_FIELDS},
        "ssh_public_keys": data.get("ssh_public_keys") or "",
        "route_access": data.get("route_access") or RouteAccess.USERS,
    }
    try:
        if not valid:
            # Only to hear what else is wrong: fields the form refused count as not given.
            container_create_check(**values)
            return None
        return services.container_create(actor=user, **values)
    except PortalError as exc:
        add_portal_error(form, exc)
        return None


def _quota_rows(user: User) -> dict[str, Any]:
    """Usage and limits for the create form, before anything is submitted."""
    quota = selectors.user_quota(user)
    usage, limits, left = quota.usage, quota.limits, quota.remaining
    rows = [
        ("Containers", usage.containers, "max_containers", None),
        ("Cores", usage.cores, "max_cores", "max_container_cores"),
        ("Memory (MiB)", usage.memory_mib, "max_memory_mib", "max_container_memory_mib"),
        ("Swap (MiB)", usage.swap_mib, "max_swap_mib", "max_container_swap_mib"),
        ("Disk (GiB)", usage.disk_gib, "max_disk_gib", "max_container_disk_gib"),
        # Besides each container's own name and SSH port; checked when one is added.
        ("Routes", usage.routes, "max_routes", "max_container_routes"),
        ("Published ports", usage.ports, "max_ports", "max_container_ports"),
    ]
    return {
        "exempt": quota.exempt,
        "rows": [
            {
                "name": name,
                "used": used,
                "limit": limits[total].value,
                "source": limits[total].source,
                "left": left.get(total),
                "per_container": limits[each].value if each else None,
            }
            for name, used, total, each in rows
        ],
    }


@login_required
@require_GET
def hostname_check(request: HttpRequest) -> JsonResponse:
    """Live check for the create form: format and availability, in the service's words."""
    try:
        name = normalise_hostname(request.GET.get("hostname", ""))
    except PortalError as exc:
        return JsonResponse({"ok": False, "message": exc.message})
    raw = request.GET.get("template", "")
    template_id = parse_id(raw)
    if raw and template_id is None:
        # The create form sends a template id; anything else is a 400 in the API's shape.
        message = "template must be a template id"
        body = {
            "ok": False,
            "code": ErrorCode.INVALID,
            "message": message,
            "detail": {"template": [message]},
        }
        return JsonResponse(body, status=400)
    template = None
    if template_id is not None:
        template = selectors.template_by_id(template_id)
    if hostname_taken(template.site if template else None, name):
        return JsonResponse({"ok": False, "message": f"hostname '{name}' is already taken"})
    return JsonResponse({"ok": True, "hostname": name})


def _get(request: HttpRequest, pk: int) -> Container:
    try:
        return selectors.container_get(acting_user(request), pk=pk)
    except NotFound:
        raise Http404("no such container") from None


# Forms of the container page, kept across the redirect when they fail (portal.formstash).
COLLABORATOR, RESIZE, REQUEST_RESIZE, DELETE, POWER, EXTEND = (
    "collaborator",
    "resize",
    "request-resize",
    "delete",
    "power",
    "extend",
)


def _stash_name(form: str, container: Container) -> str:
    return f"container:{container.pk}:{form}"


def _page_forms(request: HttpRequest, container: Container, may: dict[str, bool]) -> dict[str, Any]:
    """The container page's forms: as they failed (portal.formstash), or fresh. An error
    of a form the page no longer shows (the container moved on) is said at the top."""
    template = container.template
    current = {
        "cores": container.cores,
        "memory_mib": container.memory_mib,
        "swap_mib": container.swap_mib,
        "disk_gib": container.disk_gib,
    }

    def restored(name: str, form_class: Any, **kwargs: Any) -> Any:
        return formstash.restore(request, _stash_name(name, container), form_class, **kwargs)

    found = {
        "resize_form": restored(RESIZE, ContainerResizeForm, template=template)
        or ContainerResizeForm(initial=current, template=template),
        "request_resize_form": restored(
            REQUEST_RESIZE, ResizeRequestForm, template=template, prefix="rq"
        )
        or ResizeRequestForm(initial=current, template=template, prefix="rq"),
        "delete_form": restored(DELETE, DeleteForm, hostname=container.hostname)
        or DeleteForm(hostname=container.hostname),
        "collaborator_form": restored(COLLABORATOR, CollaboratorForm) or CollaboratorForm(),
        "extend_form": restored(EXTEND, ContainerExtendForm) or ContainerExtendForm(),
    }
    power = formstash.take(request, _stash_name(POWER, container)) or {}
    action_errors = [m for ms in power.get("errors", {}).values() for m in ms]
    live = container.status not in (ContainerStatus.DELETED, ContainerStatus.DELETING)
    sizeable = live and container.status in (ContainerStatus.RUNNING, ContainerStatus.STOPPED)
    shown = {
        "resize_form": sizeable and may["resize"],
        "request_resize_form": sizeable and may["manage_access"],
        "delete_form": live and may["delete"],
        "collaborator_form": live and may["manage_access"],
        "extend_form": live and may["extend"] and container.expires_at is not None,
    }
    hidden = [formstash.errors_of(f) for name, f in found.items() if f.is_bound and not shown[name]]
    for message in [m for ms in hidden for m in ms] + ([] if live else action_errors):
        messages.error(request, message)
    return {**found, "action_errors": action_errors, "extend_form_shown": shown["extend_form"]}


def _detail(request: HttpRequest, container: Container) -> HttpResponse:
    role = accounts_selectors.container_role(acting_user(request), container)
    may = {action: role in CONTAINER_ACTIONS[action] for action in CONTAINER_ACTIONS}
    jobs = selectors.recent_jobs(container)
    routes = [
        (route, container.site.app_url(route.subdomain))
        for route in container.routes.order_by("name")
    ]
    return render(
        request,
        "containers/detail.html",
        {
            "c": container,
            "jobs": jobs,
            "job": jobs[0] if jobs else None,
            **_page_forms(request, container, may),
            "can_manage": may["manage_access"],
            "can_resize": may["resize"],
            "can_delete": may["delete"],
            "can_manage_network": may["manage_network"],
            "route_access_choices": RouteAccess.choices,
            "collaborators": list(
                accounts_selectors.collaborators_of(container).order_by("user__username")
            ),
            "routes": routes,
            "ports": list(container.port_mappings.order_by("protocol", "external_port")),
            "nodes_down": networking_selectors.nodes_down(node=container.node),
            **_security_context(request, container),
            **_chart_context(container),
        },
    )


def _security_context(request: HttpRequest, container: Container) -> dict[str, Any]:
    """Its Wazuh agent and a page of its alerts (`?alerts_page=`), and its open alerts;
    with no Wazuh for its site, nothing of it (not even a stale disconnection alert)."""
    try:
        page = int(request.GET.get("alerts_page", "1"))
    except ValueError:
        page = 1
    security = container_security(container, page=page)
    alerts = open_alerts(container)
    if security is None:
        alerts = [a for a in alerts if a.kind != AlertKind.WAZUH_AGENT]
    return {"security": security, "alerts": alerts}


# The container page's charts (portal/static/portal/charts.js draws each panel by its id).
CHART_PANELS = (
    ("cpu", "CPU"),
    ("memory", "Memory"),
    ("disk", "Disk usage"),
    ("net", "Network"),
    ("diskio", "Disk IO"),
    ("pressure", "Memory pressure"),
)
CHART_CF_LABELS = {"AVERAGE": "Average", "MAX": "Maximum"}


def _chart_context(container: Container) -> dict[str, Any]:
    """Charts only for a container Proxmox holds (the RRD of one still being made is not
    there yet, and a deleting one's is going)."""
    shown = container.status in (ContainerStatus.RUNNING, ContainerStatus.STOPPED)
    return {
        "charts": shown,
        "chart_panels": CHART_PANELS,
        "chart_timeframes": [(t, t.capitalize()) for t in TIMEFRAMES],
        "chart_cfs": [(cf, CHART_CF_LABELS[cf]) for cf in CONSOLIDATIONS],
    }


@login_required
@require_GET
def container_detail(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        container = selectors.container_get(acting_user(request), pk=pk)
    except NotFound:
        return _deleted_detail(request, pk)
    return _detail(request, container)


def _deleted_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """A deleted container's page: that it is gone, when and why, its history; no actions."""
    try:
        container = selectors.deleted_container_get(acting_user(request), pk=pk)
    except NotFound:
        raise Http404("no such container") from None
    jobs = container.jobs.order_by("-created_at")[:10]
    try:  # a create that failed: its owner may try again from here
        failed = selectors.failed_create_get(acting_user(request), pk=pk)
    except NotFound:
        failed = None
    return render(
        request, "containers/deleted.html", {"c": container, "jobs": jobs, "failed": failed}
    )


def _back(container: Container, section: str) -> HttpResponse:
    """To the container page, at the section whose form was posted."""
    return redirect(f"{reverse('container-detail', args=[container.pk])}#{section}")


@login_required
@require_POST
def collaborator_add(request: HttpRequest, pk: int) -> HttpResponse:
    container = _get(request, pk)
    form = CollaboratorForm(request.POST)
    if form.is_valid():
        try:
            collaborators.collaborator_add(
                container=container,
                username=form.cleaned_data["username"],
                actor=acting_user(request),
            )
        except PortalError as exc:
            add_portal_error(form, exc)
        else:
            name = form.cleaned_data["username"].strip()
            messages.success(request, f"{name} may now use {container.hostname}.")
            return _back(container, "collab-h")
    # Never left on this POST-only URL: the container page shows the form again.
    formstash.stash(request, _stash_name(COLLABORATOR, container), form)
    return _back(container, "collab-h")


@login_required
@require_POST
def collaborator_remove(request: HttpRequest, pk: int) -> HttpResponse:
    container = _get(request, pk)
    username = request.POST.get("username", "")
    try:
        collaborators.collaborator_remove(
            container=container, username=username, actor=acting_user(request)
        )
    except PortalError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{username} no longer has access to {container.hostname}.")
    return redirect("container-detail", pk=pk)


@login_required
@require_POST
def route_access(request: HttpRequest, pk: int, route_id: int) -> HttpResponse:
    """Change who may open one of the container's routes (owner or staff)."""
    container = _get(request, pk)
    route = selectors.container_route(container, route_id)
    if route is None:
        raise Http404("no such route")
    access = request.POST.get("access", "")
    try:
        if access not in RouteAccess.values:
            raise ValidationFailed(
                f"access is one of {', '.join(RouteAccess.values)}", field="access"
            )
        network.route_update(route=route, access=access, actor=acting_user(request))
        messages.info(
            request,
            f"{container.site.app_url(route.subdomain)} is now open to: "
            f"{RouteAccess(access).label.lower()}.",
        )
    except PortalError as exc:
        messages.error(request, exc.message)
    return redirect("container-detail", pk=pk)


ACTIONS = {
    "start": services.container_start,
    "stop": services.container_stop,
    "restart": services.container_restart,
}


@login_required
@require_POST
def container_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """Start, stop, restart, resize, ask for a resize, delete. A refusal goes back to the
    container page, next to the form that was posted, with its input (portal.formstash)."""
    user = acting_user(request)
    container = _get(request, pk)
    from_dashboard = request.POST.get("next", "") == "dashboard"
    if action in ACTIONS:
        try:
            ACTIONS[action](container=container, actor=user)
        except PortalError as exc:
            if from_dashboard:
                messages.error(request, exc.message)
            else:
                formstash.stash_error(request, _stash_name(POWER, container), exc.message)
                return _back(container, "actions-h")
        else:
            messages.info(request, f"{action.capitalize()} of {container.hostname} queued.")
        return redirect("dashboard") if from_dashboard else _back(container, "actions-h")
    form: forms.Form
    if action == "resize":
        form = ContainerResizeForm(request.POST, template=container.template)
        name, done = RESIZE, f"Resize of {container.hostname} queued."
    elif action == "request-resize":
        form = ResizeRequestForm(request.POST, template=container.template, prefix="rq")
        name = REQUEST_RESIZE
        done = "Request sent: staff will answer it; its outcome is on your requests page."
    elif action == "delete":
        form = DeleteForm(request.POST, hostname=container.hostname)
        name, done = DELETE, f"Deleting {container.hostname}."
    elif action == "extend":
        form = ContainerExtendForm(request.POST)
        name, done = EXTEND, f"Extended the expiry of {container.hostname}."
    else:
        raise Http404("no such action")
    if form.is_valid():
        try:
            _act(action, container, user, form.cleaned_data)
        except PortalError as exc:
            add_portal_error(form, exc)
        else:
            messages.info(request, done)
            return _back(container, "actions-h")
    formstash.stash(request, _stash_name(name, container), form)
    return _back(container, "actions-h")


def _act(action: str, container: Container, user: User, data: dict[str, Any]) -> None:
    if action == "resize":
        services.container_resize(container=container, actor=user, **data)
    elif action == "request-resize":
        resource_requests.resource_request_create(
            user=user,
            kind=RequestKind.RESIZE,
            container=container,
            reason=data["reason"],
            **{k: v for k, v in data.items() if k != "reason"},
        )
    elif action == "extend":
        container_extend(container=container, actor=user, days=data["days"])
    else:
        services.container_delete(container=container, actor=user)


@login_required
@require_POST
def failed_create_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """Try a failed create again, or dismiss it from the dashboard (its owner only)."""
    user = acting_user(request)
    if action not in ("retry", "dismiss"):
        raise Http404("no such action")
    try:
        failed = selectors.failed_create_get(user, pk=pk)
    except NotFound:
        raise Http404("no such failed container") from None
    if action == "dismiss":
        failed_creates.failed_create_dismiss(container=failed, actor=user)
        return redirect("dashboard")
    try:
        job = failed_creates.failed_create_retry(container=failed, actor=user)
    except PortalError as exc:
        messages.error(request, f"{failed.hostname} cannot be created again: {exc.message}")
        return redirect("dashboard")
    messages.info(request, f"Creating {failed.hostname} again.")
    return redirect("container-detail", pk=job.container_id)
