"""/readyz: is this portal able to do its work? Each check says its state and its age.

Checks: the database (a `SELECT 1`), the broker (a ping with READYZ_BROKER_TIMEOUT),
each node (as the beat probe last found it: offline fails, maintenance does not) and
each site's gateway (a change waiting longer than READYZ_GATEWAY_STALE_AFTER fails).
`age` is in seconds since the fact the check rests on: 0 for a check made now, the
probe's age for a node, the last successful apply's age for a gateway (None: never).
Four queries and one ping in all; nothing here calls Proxmox or a gateway.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone
from kombu import Connection

from networking.models import NodeState

from .selectors import GatewayRow, gateway_rows, node_rows

OK, FAILED = "ok", "failed"


@dataclass(frozen=True)
class Check:
    state: str  # ok/failed for the database and broker; a node's or gateway's own word
    ok: bool
    age: float | None
    detail: str = ""


def _age(since: datetime | None, now: datetime) -> float | None:
    return None if since is None else round((now - since).total_seconds(), 1)


def check_database() -> Check:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any failure of the database is the answer, not an error
        return Check(state=FAILED, ok=False, age=0.0, detail=_short(exc))
    return Check(state=OK, ok=True, age=0.0)


def check_broker() -> Check:
    """One round trip to the broker, bounded by READYZ_BROKER_TIMEOUT."""
    url = settings.CELERY_BROKER_URL
    timeout = float(settings.READYZ_BROKER_TIMEOUT)
    try:
        if url.startswith(("redis://", "rediss://", "unix://")):
            import redis

            client = redis.Redis.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout
            )
            try:
                client.ping()
            finally:
                client.close()
        elif url.startswith("filesystem://"):
            # The demo's file transport: its queue folder (or, before the first message
            # made it, the nearest folder above) must be writable.
            folder = settings.CELERY_BROKER_DIR / "queue"
            while not folder.exists() and folder != folder.parent:
                folder = folder.parent
            if not (folder.is_dir() and os.access(folder, os.W_OK)):
                raise OSError(f"{folder} is not a writable folder")
        else:
            with Connection(url, connect_timeout=timeout) as conn:
                conn.ensure_connection(max_retries=1, timeout=math.ceil(timeout))
    except Exception as exc:
        return Check(state=FAILED, ok=False, age=0.0, detail=_short(exc))
    return Check(state=OK, ok=True, age=0.0)


def check_nodes(now: datetime) -> dict[str, Check]:
    checks = {}
    for row in node_rows():
        detail = ""
        if row.state == NodeState.OFFLINE:
            since = row.offline_since.isoformat(timespec="seconds") if row.offline_since else "?"
            detail = f"not answering since {since}: {row.offline_reason}"
        checks[f"{row.site}/{row.name}"] = Check(
            state=row.state,
            ok=row.state != NodeState.OFFLINE,
            age=_age(row.probed_at, now),
            detail=detail,
        )
    return checks


def gateway_check(row: GatewayRow, now: datetime) -> Check:
    """Up to date, applying (a change waits, not for long yet) or stale."""
    age = _age(row.last_success_at, now)
    if not row.pending:
        return Check(state="up to date", ok=True, age=age)
    since = row.pending_since or row.last_success_at or row.state_updated_at
    waited = _age(since, now) or 0.0
    detail = f"{row.pending} change(s) waiting for {waited:.0f} s"
    if row.last_status == "failed" and row.last_error:
        detail += f"; the last apply failed: {row.last_error[:200]}"
    if waited > float(settings.READYZ_GATEWAY_STALE_AFTER):
        return Check(state="stale", ok=False, age=age, detail=detail)
    return Check(state="applying", ok=True, age=age, detail=detail)


def readiness() -> tuple[bool, dict[str, Any]]:
    """(ready, body): the body names every check and lists the failed ones."""
    started = time.monotonic()
    now = timezone.now()
    database = check_database()
    checks: dict[str, Any] = {"database": asdict(database), "broker": asdict(check_broker())}
    failed = [name for name in ("database", "broker") if not checks[name]["ok"]]
    if database.ok:
        nodes = check_nodes(now)
        gateways = {row.site: gateway_check(row, now) for row in gateway_rows()}
        checks["nodes"] = {name: asdict(check) for name, check in nodes.items()}
        checks["gateways"] = {name: asdict(check) for name, check in gateways.items()}
        failed += [f"node {name}" for name, check in nodes.items() if not check.ok]
        failed += [f"gateway {name}" for name, check in gateways.items() if not check.ok]
    body = {
        "ready": not failed,
        "failed": failed,
        "checks": checks,
        "checked_at": now.isoformat(timespec="seconds"),
        "took_ms": round((time.monotonic() - started) * 1000, 1),
    }
    return not failed, body


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]
