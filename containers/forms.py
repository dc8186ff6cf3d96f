"""GUI forms: they collect input; the services validate and decide."""

from __future__ import annotations

from typing import Any

from django import forms

from networking.models import RouteAccess
from portal.errors import NON_FIELD, PortalError

from .models import MAX_CORES, MAX_DISK_GIB, MAX_MEMORY_MIB, MAX_SWAP_MIB, Template
from .validation import resource_limits

RESOURCE_FIELDS = ("cores", "memory_mib", "swap_mib", "disk_gib")


def add_portal_error(form: forms.Form, exc: PortalError) -> None:
    """Put each of a service's errors next to the field that caused it, in the service's
    words. A field the form already refused keeps the form's error alone."""
    for field, messages in (exc.field_errors or {NON_FIELD: [exc.message]}).items():
        name = field if field in form.fields else None
        if name is not None and form.has_error(name):
            continue
        for message in messages:
            form.add_error(name, message)


def set_limits(form: forms.Form, template: Template | None, *, prefix: str = "") -> None:
    """Give the number inputs the template's bounds (min, max), so the browser offers them."""
    if template is None:
        return
    for field, (low, high) in resource_limits(template).items():
        if prefix + field in form.fields:
            form.fields[prefix + field].widget.attrs.update({"min": low, "max": high})


class TemplateSelect(forms.Select):
    """Each option carries its template's limits, so that the number inputs follow the
    chosen template (containers/static/containers/create.js)."""

    def create_option(self, name: str, value: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        option: dict[str, Any] = super().create_option(name, value, *args, **kwargs)
        template = getattr(value, "instance", None)
        if isinstance(template, Template):
            for field, (low, high) in resource_limits(template).items():
                option["attrs"][f"data-min-{field}"] = low
                option["attrs"][f"data-max-{field}"] = high
        return option


class ContainerCreateForm(forms.Form):
    template = forms.ModelChoiceField(
        queryset=Template.objects.none(), empty_label=None, widget=TemplateSelect
    )
    # No length here: the service refuses a long name in its own words (never cut at 63).
    hostname = forms.CharField(
        help_text="Lowercase letters, digits and hyphens; it becomes <hostname>.<domain>.",
    )
    # The service checks the numbers against the chosen template's limits (all at once).
    cores = forms.IntegerField(required=False)
    memory_mib = forms.IntegerField(required=False, label="Memory (MiB)")
    swap_mib = forms.IntegerField(required=False, label="Swap (MiB)")
    disk_gib = forms.IntegerField(required=False, label="Disk (GiB)")
    ssh_public_keys = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="SSH public keys",
        help_text="One per line, e.g. ssh-ed25519 AAAA... you@laptop",
    )
    route_access = forms.ChoiceField(
        required=False,
        choices=RouteAccess.choices,
        initial=RouteAccess.USERS,
        widget=forms.RadioSelect,
        label="Who may open its web address",
        help_text="You can change it later on the container's page.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["template"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = (
            Template.objects.filter(enabled=True).select_related("site").order_by("site", "name")
        )
        self.fields["hostname"].widget.attrs.update({"autocomplete": "off", "spellcheck": "false"})
        for name in RESOURCE_FIELDS:
            self.fields[name].widget.attrs["inputmode"] = "numeric"
        set_limits(self, self.chosen_template())

    def chosen_template(self) -> Template | None:
        """The template the form shows: the one submitted, else the first offered."""
        field = self.fields["template"]
        assert isinstance(field, forms.ModelChoiceField)
        raw = self.data.get(self.add_prefix("template")) if self.is_bound else None
        if raw:
            try:
                chosen = field.to_python(raw)
            except forms.ValidationError:
                chosen = None
            if isinstance(chosen, Template):
                return chosen
        first = field.queryset.first() if field.queryset is not None else None
        return first if isinstance(first, Template) else None

    def clean_route_access(self) -> str:
        return str(self.cleaned_data.get("route_access") or RouteAccess.USERS)


class ContainerResizeForm(forms.Form):
    cores = forms.IntegerField(min_value=1, max_value=MAX_CORES)
    memory_mib = forms.IntegerField(min_value=1, max_value=MAX_MEMORY_MIB, label="Memory (MiB)")
    swap_mib = forms.IntegerField(min_value=0, max_value=MAX_SWAP_MIB, label="Swap (MiB)")
    disk_gib = forms.IntegerField(
        min_value=1, max_value=MAX_DISK_GIB, label="Disk (GiB, grows only)"
    )

    def __init__(self, *args: Any, template: Template | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        set_limits(self, template)


class ResizeRequestForm(ContainerResizeForm):
    """Asking staff for more than the quota allows: the template still bounds it."""

    # Checked by the service (it says what a reason needs); named `reason` unprefixed.
    reason = forms.CharField(
        required=False, label="Why it needs more", widget=forms.Textarea(attrs={"rows": 2})
    )

    def add_prefix(self, field_name: str) -> str:
        return field_name if field_name == "reason" else super().add_prefix(field_name)


class DeleteForm(forms.Form):
    confirm = forms.CharField(label="Type the hostname to confirm")

    def __init__(self, *args: Any, hostname: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hostname = hostname

    def clean_confirm(self) -> str:
        value: str = self.cleaned_data["confirm"].strip()
        if value != self.hostname:
            raise forms.ValidationError(f"type {self.hostname} to delete it")
        return value


class CollaboratorForm(forms.Form):
    username = forms.CharField(
        max_length=150,
        label="Username",
        help_text="Their directory (LDAP) login name.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )


class ExtendForm(forms.Form):
    """A deployment's new expiry, in days from now (the service checks the upper bound)."""

    days = forms.IntegerField(
        min_value=1,
        initial=7,
        label="Days from now",
        widget=forms.NumberInput(attrs={"min": 1, "inputmode": "numeric"}),
    )


class ContainerExtendForm(forms.Form):
    """Move a container's expiry later (the service checks the policy's bound)."""

    days = forms.IntegerField(
        min_value=1,
        max_value=3650,
        initial=30,
        label="Days later",
        widget=forms.NumberInput(attrs={"min": 1, "inputmode": "numeric"}),
    )
