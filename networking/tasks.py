"""Celery tasks of the gateway: they run on the gateway host (queue `gateway.<site>`)."""

from __future__ import annotations

import logging

from celery import Task, shared_task

from portal.celery import backoff, gateway_queue
from portal.errors import ApplyFailed

from .gateway import apply_site
from .models import Site

log = logging.getLogger(__name__)

# A server that is down or did not reload is tried again after 1, 2, 4, 8 and 16 s.
RETRIES = 5


@shared_task(
    bind=True,
    name="networking.apply_gateway",
    acks_late=True,
    ignore_result=True,
    max_retries=RETRIES,
)
def apply_gateway(self: Task, site_id: int, force: bool = False) -> None:
    """Apply the site's latest state (coalesced: most deliveries find nothing left to do)."""
    site = Site.objects.filter(pk=site_id).first()
    if site is None:
        log.info("site %s is gone; nothing to apply", site_id)
        return
    outcome = apply_site(site, force=force)
    revision = outcome.revision
    if (
        revision is not None
        and not revision.succeeded
        and revision.error_code in ApplyFailed.TRANSIENT
    ):
        delay = backoff(self.request.retries + 1, base=1.0, cap=30.0)
        raise self.retry(countdown=delay, queue=gateway_queue(site.slug))
