"""The reconciler's reports in the admin: read-only, with *Reconcile now* and the orphan actions."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from networking.models import Site
from portal.actors import acting_user
from portal.admin_tools import ReadOnlyAdmin, run_each

from . import orphans, reconciler
from .models import FindingKind, ReconcileFinding, ReconcileRun


class _ReadOnly(ReadOnlyAdmin, admin.ModelAdmin):
    """Reports are written by the reconciler alone."""


class FindingInline(ReadOnlyAdmin, admin.TabularInline):
    model = ReconcileFinding
    fields = ("kind", "action", "node", "vmid", "container", "message", "resolution")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True


class ReconcileForm(forms.Form):
    site = forms.ModelChoiceField(queryset=Site.objects.order_by("slug"), empty_label=None)
    dry_run = forms.BooleanField(
        required=False, initial=True, help_text="Report only: change nothing anywhere."
    )


@admin.register(ReconcileRun)
class ReconcileRunAdmin(_ReadOnly):
    list_display = ("started_at", "site", "dry_run", "summary", "actor")
    list_filter = ("site", "dry_run")
    list_select_related = ("site", "actor")
    readonly_fields = (
        "site",
        "dry_run",
        "actor",
        "started_at",
        "finished_at",
        "nodes_checked",
        "nodes_skipped",
        "counts",
        "summary",
        "act_on_findings",
    )
    inlines = (FindingInline,)

    @admin.display(description="Act on findings")
    def act_on_findings(self, obj: ReconcileRun) -> str:
        url = reverse("admin:containers_reconcilefinding_changelist") + f"?run__id__exact={obj.pk}"
        return format_html('<a href="{}">Adopt or destroy orphans from the findings list</a>', url)

    def get_urls(self) -> list[URLPattern]:
        run = path(
            "run/",
            self.admin_site.admin_view(self.run_view),
            name="containers_reconcilerun_run",
        )
        return [run, *super().get_urls()]

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        extra = {"run_url": reverse("admin:containers_reconcilerun_run"), **(extra_context or {})}
        return super().changelist_view(request, extra)

    def run_view(self, request: HttpRequest) -> HttpResponse:
        """Reconcile one site now (a dry run unless unticked), then show the report."""
        form = ReconcileForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            run = reconciler.reconcile_site(
                site=form.cleaned_data["site"],
                dry_run=form.cleaned_data["dry_run"],
                actor=acting_user(request),
            )
            self.message_user(request, run.summary, messages.SUCCESS)
            return HttpResponseRedirect(
                reverse("admin:containers_reconcilerun_change", args=(run.pk,))
            )
        context = {
            **self.admin_site.each_context(request),
            "title": "Reconcile a site with Proxmox",
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/containers/reconcilerun/run.html", context)


@admin.register(ReconcileFinding)
class ReconcileFindingAdmin(_ReadOnly):
    list_display = ("run", "kind", "action", "node", "vmid", "container", "message", "resolution")
    list_filter = (
        "kind",
        "action",
        "run__site",
        ("resolved_at", admin.EmptyFieldListFilter),
    )
    list_select_related = ("run", "run__site", "container")
    search_fields = ("message", "=vmid")
    actions = ("adopt", "destroy")

    @admin.action(description="Adopt the selected orphans (they become containers)")
    def adopt(self, request: HttpRequest, queryset: QuerySet[ReconcileFinding]) -> None:
        def adopt_one(finding: ReconcileFinding) -> str:
            job = orphans.orphan_adopt(finding=finding, actor=acting_user(request))
            return f"CT {finding.vmid}: {finding.resolution} (mend job {job.pk})"

        run_each(self, request, queryset.filter(kind=FindingKind.ORPHAN), adopt_one)
        self._not_orphans(request, queryset)

    @admin.action(description="Destroy the selected orphan CTs on Proxmox (stop, purge)")
    def destroy(self, request: HttpRequest, queryset: QuerySet[ReconcileFinding]) -> None:
        run_each(
            self,
            request,
            queryset.filter(kind=FindingKind.ORPHAN),
            lambda f: orphans.orphan_destroy(finding=f, actor=acting_user(request)),
        )
        self._not_orphans(request, queryset)

    def _not_orphans(self, request: HttpRequest, queryset: QuerySet[ReconcileFinding]) -> None:
        others = queryset.exclude(kind=FindingKind.ORPHAN).count()
        if others:
            self.message_user(
                request,
                f"{others} selected finding(s) are not orphans: left alone",
                messages.WARNING,
            )
