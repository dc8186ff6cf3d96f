from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Cluster Portal"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the deploy checks)
