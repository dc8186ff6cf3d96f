"""The case of acronyms and units in the names the admin shows.

Django derives a model's or a field's name from its Python name, in lower case ("api
token", "tls fingerprint", "max memory mib"), and the admin capitalises only the first
letter: "Api tokens", "Tls fingerprint", "Max memory mib". At start-up the derived names
of the portal's own models get their words back ("API tokens", "TLS fingerprint", "Max
memory MiB"); a name a model declares is kept as written.

No migration follows from this: migrations read the names as declared
(`Field._verbose_name`, `Meta.original_attrs`), never these derived ones.
"""

from __future__ import annotations

from django.apps import apps
from django.contrib import admin
from django.db.models import Field

# Lower-case words as Django derives them, and how they are written.
WORDS = {
    "api": "API",
    "ca": "CA",
    "cpu": "CPU",
    "dhcp": "DHCP",
    "dns": "DNS",
    "gib": "GiB",
    "http": "HTTP",
    "id": "ID",
    "ip": "IP",
    "ldap": "LDAP",
    "mac": "MAC",
    "mib": "MiB",
    "otp": "OTP",
    "ssh": "SSH",
    "tcp": "TCP",
    "tls": "TLS",
    "totp": "TOTP",
    "udp": "UDP",
    "upid": "UPID",
    "url": "URL",
    "vmid": "VMID",
}
PORTAL_APPS = ("accounts", "containers", "networking")


def restore_case(name: object) -> str:
    return " ".join(WORDS.get(word, word) for word in str(name).split(" "))


def restore_derived_names(app_labels: tuple[str, ...] = PORTAL_APPS) -> None:
    for label in app_labels:
        for model in apps.get_app_config(label).get_models():
            opts = model._meta
            if "verbose_name" not in opts.original_attrs:
                opts.verbose_name = restore_case(opts.verbose_name)
            if "verbose_name_plural" not in opts.original_attrs:
                opts.verbose_name_plural = restore_case(opts.verbose_name_plural)
            for field in opts.get_fields():
                # Declared names are kept; reverse relations have no name of their own.
                if isinstance(field, Field) and field._verbose_name is None:  # type: ignore[attr-defined]
                    field.verbose_name = restore_case(field.verbose_name)


def name_admin_site() -> None:
    admin.site.site_header = "Cluster Portal administration"
    admin.site.site_title = "Cluster Portal admin"
    admin.site.index_title = "Administration"
