"""`manage.py check --deploy` warnings for settings that work in the demo but not in production."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Tags, Warning, register

PROCESS_LOCAL_CACHES = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
)


@register(Tags.caches, Tags.security, deploy=True)
def shared_cache(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """The per-user event stream cap and the API throttles count in the cache: with one
    per process (gunicorn runs several) each process counts alone."""
    backend = settings.CACHES.get("default", {}).get("BACKEND", "")
    if backend not in PROCESS_LOCAL_CACHES:
        return []
    return [
        Warning(
            f"the default cache is process-local ({backend.rsplit('.', 1)[-1]}): the event "
            "stream cap per user and the API throttles would count per web process",
            hint="set CACHE_URL to Redis, e.g. redis://127.0.0.1:6379/2",
            id="portal.W001",
        )
    ]
