"""A create asked for with an Idempotency-Key (the REST API): one container per key."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction

from portal.errors import Conflict, ErrorCode, ValidationFailed

from .models import IdempotencyKey, Job
from .services import container_create

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def container_create_idempotent(*, key: str, owner: User, **kwargs: Any) -> tuple[Job, bool]:
    """container_create, once per (user, Idempotency-Key): (job, created).

    The key row is inserted in the same transaction as the container, so two
    concurrent requests with one key make one container; the second waits for the
    first's commit and gets its job. The same key with other parameters is a Conflict.
    """
    if not key or len(key) > 200 or not key.isprintable():
        raise ValidationFailed(
            "Idempotency-Key must be 1-200 printable characters", field="Idempotency-Key"
        )
    fingerprint = hashlib.sha256(
        json.dumps(
            {k: (v.pk if hasattr(v, "pk") else v) for k, v in sorted(kwargs.items())}, default=str
        ).encode()
    ).hexdigest()

    def existing() -> tuple[Job, bool] | None:
        found = IdempotencyKey.objects.select_related("job").filter(user=owner, key=key).first()
        if found is None:
            return None
        if found.fingerprint != fingerprint:
            raise Conflict(
                "this Idempotency-Key was used with other parameters",
                code=ErrorCode.IDEMPOTENCY_KEY_REUSED,
            )
        if found.job is None:
            raise Conflict(
                "the request with this Idempotency-Key failed; use a new key",
                code=ErrorCode.IDEMPOTENCY_KEY_REUSED,
            )
        return found.job, False

    if (hit := existing()) is not None:
        return hit
    try:
        with transaction.atomic():
            record = IdempotencyKey.objects.create(user=owner, key=key, fingerprint=fingerprint)
            job = container_create(owner=owner, **kwargs)
            record.job = job
            record.save(update_fields=["job"])
            return job, True
    except IntegrityError:
        if (hit := existing()) is not None:
            return hit
        raise
