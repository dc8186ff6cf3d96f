"""Shared by the admin modules: who the operator is, and running a service per object."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import conditional_escape

from portal.actors import acting_user
from portal.errors import PortalError

if TYPE_CHECKING:
    pass


def run_each(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet[Any],
    fn: Callable[[Any], str],
) -> None:
    """Call a service per selected object; report each success or domain error."""
    for obj in queryset:
        try:
            text = fn(obj)
        except PortalError as exc:
            model_admin.message_user(request, f"{obj}: {exc.message}", messages.ERROR)
        else:
            model_admin.message_user(request, text, messages.SUCCESS)


class ReadOnlyAdmin:
    """Mixed into an admin or inline that shows rows the portal alone writes (reports,
    the audit log, a site's nodes on its page): no add, change or delete."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ServiceAdmin(admin.ModelAdmin):
    """A ModelAdmin whose form saves call a service (`save_model` is overridden by each).

    A service's refusal (a PortalError) is shown as an error and the form is shown again;
    nothing is logged as changed, and no default save runs in its place."""

    _FAILED = "_service_failed"

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        # The admin renders help texts as HTML, so "<hostname>.<domain>" would vanish as an
        # unknown tag: they are plain text here (escaping twice is a no-op).
        form = super().get_form(request, obj, change, **kwargs)
        for field in form.base_fields.values():
            if field.help_text:
                field.help_text = conditional_escape(field.help_text)
        return form

    def call_service(self, request: HttpRequest, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except PortalError as exc:
            setattr(request, self._FAILED, True)
            self.message_user(request, exc.message, messages.ERROR)
            return None

    def save_through(
        self,
        request: HttpRequest,
        obj: Any,
        form: Any,
        change: bool,
        *,
        fields: Any,
        create: Callable[..., Any],
        update: Callable[..., Any],
    ) -> None:
        """The form saved by `update(obj, actor=, values=)` (the changed values) or, for a
        new object, `create(actor=, values=)` (every value); `obj` then is the new row."""
        actor = acting_user(request)
        if change:
            self.call_service(
                request, lambda: update(obj, actor=actor, values=form_values(form, fields))
            )
            return
        made = self.call_service(
            request, lambda: create(actor=actor, values=form_values(form, fields, every=True))
        )
        if made is not None:
            obj.pk, obj._state.adding = made.pk, False

    def service_failed(self, request: HttpRequest) -> bool:
        return bool(getattr(request, self._FAILED, False))

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        if not self.service_failed(request):
            super().save_related(request, form, formsets, change)

    def construct_change_message(
        self, request: HttpRequest, form: Any, formsets: Any, add: bool = False
    ) -> Any:
        # A refused save saved no inline either: there is no change to describe (and the
        # unsaved formsets have nothing to say).
        if self.service_failed(request):
            return []
        return super().construct_change_message(request, form, formsets, add)

    def log_addition(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        return None if self.service_failed(request) else super().log_addition(request, obj, message)

    def log_change(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        return None if self.service_failed(request) else super().log_change(request, obj, message)

    def response_add(self, request: HttpRequest, obj: Any, post_url_continue: Any = None) -> Any:
        if self.service_failed(request):
            return HttpResponseRedirect(request.get_full_path())
        return super().response_add(request, obj, post_url_continue)

    def response_change(self, request: HttpRequest, obj: Any) -> Any:
        if self.service_failed(request):
            return HttpResponseRedirect(request.get_full_path())
        return super().response_change(request, obj)

    def response_delete(self, request: HttpRequest, obj_display: str, obj_id: Any) -> Any:
        if self.service_failed(request):  # not deleted: no "deleted successfully"
            opts = self.opts
            return HttpResponseRedirect(
                reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
            )
        return super().response_delete(request, obj_display, obj_id)


def form_values(form: Any, fields: Any, *, every: bool = False) -> dict[str, Any]:
    """The form's cleaned values among `fields` that a service sets: the changed ones, or
    `every` one (a new object)."""
    names = form.cleaned_data if every else form.changed_data
    return {name: form.cleaned_data[name] for name in names if name in fields}
