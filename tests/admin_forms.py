"""Posting a Django admin change form as a browser would: every field's current value
(inline formsets included), with the given ones replaced."""

from __future__ import annotations

from typing import Any

from django import forms
from django.test import Client


def _value(field: forms.Field, value: Any) -> Any:
    if isinstance(field, forms.BooleanField):
        return "on" if value else ""
    if isinstance(field, forms.ModelChoiceField) and hasattr(value, "pk"):
        return value.pk
    return "" if value is None else value


def _form_data(form: forms.BaseForm) -> dict[str, Any]:
    return {
        form.add_prefix(name): _value(field, form.initial.get(name, field.initial))
        for name, field in form.fields.items()
    }


def change_form_data(client: Client, url: str, **values: Any) -> dict[str, Any]:
    page = client.get(url)
    assert page.status_code == 200, url
    data = _form_data(page.context["adminform"].form)
    for inline in page.context["inline_admin_formsets"]:
        formset = inline.formset
        data.update(_form_data(formset.management_form))
        for form in formset.forms:
            data.update(_form_data(form))
    data.update(values)
    return data


def post_change(client: Client, url: str, **values: Any) -> Any:
    """POST the change form with `values` changed; the response, redirects followed."""
    return client.post(url, change_form_data(client, url, **values), follow=True)
