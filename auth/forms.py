"""Forms of the login and 2FA pages (plain; the GUI restyles the templates)."""

from __future__ import annotations

from django import forms

from .models import QUOTA_VALUE_MAX, NotificationKind


class LoginForm(forms.Form):
    username = forms.CharField(
        max_length=150,
        widget=forms.TextInput(attrs={"autocomplete": "username", "autofocus": True}),
    )
    password = forms.CharField(
        strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"})
    )


class OtpCodeForm(forms.Form):
    code = forms.CharField(
        max_length=32,
        label="Code",
        help_text="The 6-digit code of your authenticator app, or one of your recovery codes.",
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "text", "autofocus": True}
        ),
    )


class OtpConfirmForm(forms.Form):
    code = forms.CharField(
        max_length=10,
        label="Code from the app",
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}
        ),
    )


class OtpProofForm(forms.Form):
    """Proof of the person before a 2FA change: a session alone is not enough."""

    proof = forms.CharField(
        strip=False,
        max_length=256,
        label="Confirm it is you",
        help_text="The code your app shows now, one of your recovery codes, or your password.",
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )


class OtpReplaceForm(OtpConfirmForm, OtpProofForm):
    """Moving to a new device: its first code, and proof with the device in use."""


# -- profile: SSH keys, API tokens, resource requests ------------------------------------------
class SshKeyForm(forms.Form):
    key = forms.CharField(
        label="Public key",
        help_text="One key, as in ~/.ssh/id_ed25519.pub: ssh-ed25519 AAAA... you@laptop",
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false", "autocomplete": "off"}),
    )
    name = forms.CharField(
        label="Name",
        required=False,
        max_length=100,
        help_text="Empty: the key's comment.",
    )


EXPIRY_CHOICES = [("7", "7 days"), ("30", "30 days"), ("90", "90 days"), ("365", "1 year")]
EXPIRY_CHOICES.append(("never", "never"))


class TokenForm(forms.Form):
    name = forms.CharField(
        label="Name", max_length=100, help_text="What it is for, e.g. 'CI deploy' or 'laptop CLI'."
    )
    scope = forms.ChoiceField(
        label="Scope",
        choices=[("read", "Read only"), ("write", "Read and write")],
        initial="read",
        widget=forms.RadioSelect,
    )
    expires_in_days = forms.ChoiceField(label="Expires after", choices=EXPIRY_CHOICES, initial="90")

    def expiry_days(self) -> int | None:
        value = self.cleaned_data["expires_in_days"]
        return None if value == "never" else int(value)


class QuotaRequestForm(forms.Form):
    """More quota: the limits wanted (empty: unchanged)."""

    max_containers = forms.IntegerField(
        label="Containers", required=False, min_value=0, max_value=QUOTA_VALUE_MAX
    )
    max_cores = forms.IntegerField(
        label="Cores in total", required=False, min_value=0, max_value=QUOTA_VALUE_MAX
    )
    max_memory_mib = forms.IntegerField(
        label="Memory in total (MiB)", required=False, min_value=0, max_value=QUOTA_VALUE_MAX
    )
    max_swap_mib = forms.IntegerField(
        label="Swap in total (MiB)", required=False, min_value=0, max_value=QUOTA_VALUE_MAX
    )
    max_disk_gib = forms.IntegerField(
        label="Disk in total (GiB)", required=False, min_value=0, max_value=QUOTA_VALUE_MAX
    )
    max_container_cores = forms.IntegerField(
        label="Cores per container", required=False, min_value=0, max_value=QUOTA_VALUE_MAX
    )
    max_container_memory_mib = forms.IntegerField(
        label="Memory per container (MiB)", required=False, min_value=0, max_value=QUOTA_VALUE_MAX
    )
    max_container_swap_mib = forms.IntegerField(
        label="Swap per container (MiB)", required=False, min_value=0, max_value=QUOTA_VALUE_MAX
    )
    max_container_disk_gib = forms.IntegerField(
        label="Disk per container (GiB)", required=False, min_value=0, max_value=QUOTA_VALUE_MAX
    )
    max_routes = forms.IntegerField(
        label="Routes in total", required=False, min_value=0, max_value=QUOTA_VALUE_MAX
    )
    max_ports = forms.IntegerField(
        label="Published ports in total", required=False, min_value=0, max_value=QUOTA_VALUE_MAX
    )
    max_container_routes = forms.IntegerField(
        label="Routes per container", required=False, min_value=0, max_value=QUOTA_VALUE_MAX
    )
    max_container_ports = forms.IntegerField(
        label="Published ports per container",
        required=False,
        min_value=0,
        max_value=QUOTA_VALUE_MAX,
    )
    reason = forms.CharField(
        label="Why you need it",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="A sentence or two for the staff who decide.",
    )

    LIMIT_FIELDS = (
        "max_containers",
        "max_cores",
        "max_memory_mib",
        "max_swap_mib",
        "max_disk_gib",
        "max_container_cores",
        "max_container_memory_mib",
        "max_container_swap_mib",
        "max_container_disk_gib",
        "max_routes",
        "max_ports",
        "max_container_routes",
        "max_container_ports",
    )

    def limits(self) -> dict[str, int]:
        return {
            f: self.cleaned_data[f]
            for f in self.LIMIT_FIELDS
            if self.cleaned_data.get(f) is not None
        }

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if not self.errors and not any(data.get(f) is not None for f in self.LIMIT_FIELDS):
            raise forms.ValidationError("ask for at least one limit")
        return data


class NotificationsForm(forms.Form):
    """Which kinds a user receives, and their webhook (URL and secret are never shown back)."""

    webhook_url = forms.CharField(
        required=False,
        max_length=2000,
        label="Webhook URL",
        help_text="https (or http to an allowed host). Empty: unchanged.",
        widget=forms.URLInput(attrs={"autocomplete": "off"}),
    )
    webhook_secret = forms.CharField(
        required=False,
        max_length=200,
        label="Webhook secret",
        help_text="Signs each POST (X-Portal-Signature: sha256=HMAC). Empty: unchanged.",
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    webhook_remove = forms.BooleanField(required=False, label="Remove my webhook")

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        for kind, label in NotificationKind.choices:
            self.fields[f"kind_{kind}"] = forms.BooleanField(required=False, label=label)

    def kinds(self) -> dict[str, bool]:
        return {k: bool(self.cleaned_data.get(f"kind_{k}")) for k in NotificationKind.values}

    def update(self) -> dict[str, object]:
        """The arguments of auth.notifications.notification_settings_update."""
        data = self.cleaned_data
        url = "" if data.get("webhook_remove") else (data.get("webhook_url") or "").strip() or None
        return {
            "kinds": self.kinds(),
            "webhook_url": url,
            "webhook_secret": (data.get("webhook_secret") or None) if url != "" else None,
        }
