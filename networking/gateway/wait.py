"""Waiting, from a job or a command, for the apply that covers a generation."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings

from portal.errors import UpstreamError, UpstreamUnavailable

from ..models import ConfigRevision, GatewayState, RevisionStatus, Site
from .errors import TRANSIENT_ERRORS


def wait_for_apply(
    site: Site,
    generation: int,
    *,
    timeout: float | None = None,
    on_poll: Callable[[], None] | None = None,
) -> ConfigRevision | None:
    """Block until a successful apply covers `generation`; raise if one covering it failed."""
    timeout = settings.GATEWAY_APPLY_TIMEOUT if timeout is None else timeout
    deadline = time.monotonic() + timeout
    while True:
        applied = (
            GatewayState.objects.filter(site=site).values_list("applied", flat=True).first() or 0
        )
        if applied >= generation:
            return (
                ConfigRevision.objects.filter(site=site, generation__gte=generation)
                .exclude(status=RevisionStatus.FAILED)
                .order_by("id")
                .first()
            )
        failed = (
            ConfigRevision.objects.filter(
                site=site, generation__gte=generation, status=RevisionStatus.FAILED
            )
            .order_by("-id")
            .first()
        )
        if failed is not None:
            message = f"the gateway of {site.name} could not apply the change: {failed.error}"
            if failed.error_code in TRANSIENT_ERRORS:
                raise UpstreamUnavailable(message, code="gateway_unavailable", revision=failed.pk)
            raise UpstreamError(message, code="gateway_failed", revision=failed.pk)
        if time.monotonic() > deadline:
            raise UpstreamUnavailable(
                f"the gateway of {site.name} has not applied the change within {timeout:.0f} s; "
                f"is its worker (queue gateway.{site.slug}) running?",
                code="gateway_timeout",
            )
        if on_poll:
            on_poll()
        time.sleep(0.05)
