from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Cluster Portal"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the deploy checks)
        from .names import name_admin_site, restore_derived_names

        restore_derived_names()
        name_admin_site()
