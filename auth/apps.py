from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Identity: LDAP login, access groups, quotas, tokens, 2FA, audit (label `accounts`)."""

    name = "auth"
    label = "accounts"
    verbose_name = "Accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import backends  # noqa: F401  (connects the "directory is down" note)
        from .api import schema  # noqa: F401  (registers the bearer scheme with drf-spectacular)
