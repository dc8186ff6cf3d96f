"""GUI forms: they collect input; the services validate and decide."""

from __future__ import annotations

from typing import Any

from django import forms

from portal.errors import PortalError

from .models import MAX_CORES, MAX_DISK_GIB, MAX_MEMORY_MIB, MAX_SWAP_MIB, Template

# Service error fields -> form fields.
FIELD_MAP = {"memory": "memory_mib", "swap": "swap_mib", "disk": "disk_gib"}


def add_portal_error(form: forms.Form, exc: PortalError) -> None:
    """Put a service's error next to the field that caused it, in the service's words."""
    field = FIELD_MAP.get(str(exc.extra.get("field", "")), exc.extra.get("field"))
    form.add_error(field if field in form.fields else None, exc.message)


class ContainerCreateForm(forms.Form):
    template = forms.ModelChoiceField(queryset=Template.objects.none(), empty_label=None)
    hostname = forms.CharField(
        max_length=63,
        help_text="Lowercase letters, digits and hyphens; it becomes <hostname>.<domain>.",
    )
    cores = forms.IntegerField(required=False, min_value=1, max_value=MAX_CORES)
    memory_mib = forms.IntegerField(
        required=False, min_value=1, max_value=MAX_MEMORY_MIB, label="Memory (MiB)"
    )
    swap_mib = forms.IntegerField(
        required=False, min_value=0, max_value=MAX_SWAP_MIB, label="Swap (MiB)"
    )
    disk_gib = forms.IntegerField(
        required=False, min_value=1, max_value=MAX_DISK_GIB, label="Disk (GiB)"
    )
    ssh_public_keys = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="SSH public keys",
        help_text="One per line, e.g. ssh-ed25519 AAAA... you@laptop",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["template"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = (
            Template.objects.filter(enabled=True).select_related("site").order_by("site", "name")
        )
        self.fields["hostname"].widget.attrs.update({"autocomplete": "off", "spellcheck": "false"})


class ContainerResizeForm(forms.Form):
    cores = forms.IntegerField(min_value=1, max_value=MAX_CORES)
    memory_mib = forms.IntegerField(min_value=1, max_value=MAX_MEMORY_MIB, label="Memory (MiB)")
    swap_mib = forms.IntegerField(min_value=0, max_value=MAX_SWAP_MIB, label="Swap (MiB)")
    disk_gib = forms.IntegerField(
        min_value=1, max_value=MAX_DISK_GIB, label="Disk (GiB, grows only)"
    )


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
