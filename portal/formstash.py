"""Post/redirect/get for a form that lives on another page.

A form posted to a POST-only URL (a container page's collaborator, resize or delete
form) that fails is not answered there: its input and errors wait in the session, the
browser is sent back to the page the form is on, and that page shows the form again
with the errors next to it and the input kept. A reload then never re-posts.
"""

from __future__ import annotations

from typing import Any, TypeVar

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS
from django.http import HttpRequest

SESSION_KEY = "portal.formstash"

F = TypeVar("F", bound=forms.Form)


def stash(request: HttpRequest, name: str, form: forms.Form) -> None:
    """Keep a failed, bound form's input and errors for the next page that restores `name`."""
    data = {
        form.add_prefix(field): str(form.data.get(form.add_prefix(field), ""))
        for field in form.fields
    }
    errors = {field: [str(m) for m in messages] for field, messages in form.errors.items()}
    _put(request, name, {"data": data, "errors": errors})


def stash_error(request: HttpRequest, name: str, message: str) -> None:
    """Keep an error about an action that has no input (a Start button, say)."""
    _put(request, name, {"data": {}, "errors": {NON_FIELD_ERRORS: [message]}})


def _put(request: HttpRequest, name: str, value: dict[str, Any]) -> None:
    saved = dict(request.session.get(SESSION_KEY) or {})
    saved[name] = value
    request.session[SESSION_KEY] = saved


def take(request: HttpRequest, name: str) -> dict[str, Any] | None:
    """The stashed input and errors of `name`, once (they are removed)."""
    saved = dict(request.session.get(SESSION_KEY) or {})
    value = saved.pop(name, None)
    if value is not None:
        if saved:
            request.session[SESSION_KEY] = saved
        else:
            del request.session[SESSION_KEY]
    return value if isinstance(value, dict) else None


def restore(request: HttpRequest, name: str, form_class: type[F], **kwargs: Any) -> F | None:
    """The form `name` as it was posted, bound to its input, with every error it had;
    None when nothing was stashed."""
    saved = take(request, name)
    if saved is None:
        return None
    form = form_class(data=saved.get("data") or {}, **kwargs)
    form.is_valid()  # the form's own errors come back by themselves
    for field, messages in (saved.get("errors") or {}).items():
        target = None if field == NON_FIELD_ERRORS or field not in form.fields else field
        have = [str(m) for m in form.errors.get(target or NON_FIELD_ERRORS) or []]
        for message in messages:
            if message not in have:
                form.add_error(target, message)
    return form


def errors_of(form: forms.Form | None) -> list[str]:
    """Every message of a form, for when the form cannot be shown (they go to the top)."""
    if form is None:
        return []
    return [str(m) for messages in form.errors.values() for m in messages]
