from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Identity: LDAP login, access groups, quotas, tokens, 2FA, audit (label `accounts`)."""

    name = "auth"
    label = "accounts"
    verbose_name = "Accounts"
