"""Celery tasks of the gateway: they run on the gateway host (queue `gateway.<site>`)."""

from __future__ import annotations

import logging

from celery import Task, shared_task

from portal.celery import gateway_queue

from .gateway import TRANSIENT_ERRORS, apply_site
from .models import Site

log = logging.getLogger(__name__)

RETRY_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)


@shared_task(
    bind=True,
    name="networking.apply_gateway",
    acks_late=True,
    ignore_result=True,
    max_retries=len(RETRY_DELAYS),
)
def apply_gateway(self: Task, site_id: int, force: bool = False) -> None:
    """Apply the site's latest state (coalesced: most deliveries find nothing left to do)."""
    site = Site.objects.filter(pk=site_id).first()
    if site is None:
        log.info("site %s is gone; nothing to apply", site_id)
        return
    outcome = apply_site(site, force=force)
    revision = outcome.revision
    if revision is not None and not revision.succeeded and revision.error_code in TRANSIENT_ERRORS:
        # A server that is down or did not reload: try again, a few times, later.
        delay = RETRY_DELAYS[min(self.request.retries, len(RETRY_DELAYS) - 1)]
        raise self.retry(countdown=delay, queue=gateway_queue(site.slug))
