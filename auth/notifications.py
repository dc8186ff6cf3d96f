"""Notifications: one `notify()` for every layer above, preferences, and webhooks.

`notify()` picks the recipients (the users named, operators if asked, less those who muted
the kind), and queues one delivery task per mail and per webhook when the caller's
transaction commits (`accounts.deliver_notification`, retried with backoff); `notify_each()`
does the same for many notices of one kind in a fixed number of queries. Neither raises: a
notification that cannot even be queued is logged, and the work that asked for it (a job,
a sweep, a decision) goes on. Sending is in `auth.notification_delivery`.

Kinds and callers: `job_failed` (containers.jobs.runner), `expiry` (containers.container_expiry
and containers.deployment_expiry), `resource_request` (containers.resource_requests),
`reconcile` (containers.reconciler, to operators), `wazuh_sweep` (containers.wazuh.sweep, to
operators), `alert` (containers.metrics.alerts, to the owner and operators, with
`notify_each` after a poll).
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from portal.errors import ErrorCode, ValidationFailed

from .audit import audit_record
from .notification_models import NotificationKind, NotificationPreference, Webhook

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from networking.models import Site

log = logging.getLogger(__name__)

EMAIL = "email"
WEBHOOK = "webhook"
URL_MAX = 2000


# -- sending -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Notice:
    """One message of a kind and whom it is for (see `notify`)."""

    subject: str
    text: str
    users: tuple[User, ...] = ()
    operators: bool = False
    site: Site | None = None
    data: dict[str, Any] = field(default_factory=dict)


def notify(
    *,
    kind: str,
    subject: str,
    text: str,
    users: Iterable[User] = (),
    operators: bool = False,
    site: Site | None = None,
    data: dict[str, Any] | None = None,
) -> int:
    """Queue `subject`/`text` of `kind` for `users` (and staff if `operators`) by mail and
    their webhooks, and for `site`'s webhook; on commit. Returns how many deliveries were
    planned; never raises."""
    notice = Notice(subject, text, tuple(users), operators, site, data or {})
    return notify_each(kind=kind, notices=[notice])


def notify_each(*, kind: str, notices: Sequence[Notice]) -> int:
    """`notify` for several notices of one kind at once (a poll that raises many alerts):
    the recipients of all of them are planned in a fixed number of queries (staff,
    preferences, user webhooks, site webhooks), whatever their number. Returns how many
    deliveries were planned; never raises."""
    if not notices:
        return 0
    try:
        planned = _deliveries(kind, notices)
    except Exception:  # the caller's work matters more than its notification
        log.exception("could not plan %d %s notification(s)", len(notices), kind)
        return 0
    batches = []
    for notice, deliveries in zip(notices, planned, strict=True):
        if not deliveries:
            continue
        payload = {
            "id": str(uuid.uuid4()),
            "kind": str(kind),
            "subject": notice.subject[:200],
            "text": notice.text,
            "data": notice.data,
            "created_at": timezone.now().isoformat(),
        }
        batches.append((deliveries, payload))
    if batches:
        transaction.on_commit(lambda: _queue_batches(batches))
    return sum(len(d) for d, _ in batches)


def _deliveries(kind: str, notices: Sequence[Notice]) -> list[list[tuple[str, int]]]:
    """Each notice's deliveries: mail and webhook per wanting user, then its site's webhook."""
    NotificationKind(kind)  # an unknown kind is a bug: ValueError, logged by notify_each()
    staff: dict[int, User] = {}
    if any(n.operators for n in notices):
        found = get_user_model().objects.filter(is_staff=True, is_active=True)
        staff = {u.pk: u for u in found}
    people: list[dict[int, User]] = []
    for notice in notices:
        named = {u.pk: u for u in notice.users if u is not None and u.is_active}
        people.append({**named, **staff} if notice.operators else named)
    everyone = {pk for group in people for pk in group}
    muted = {
        p.user_id
        for p in NotificationPreference.objects.filter(user_id__in=list(everyone))
        if kind in (p.muted_kinds or [])
    }
    user_hooks: dict[int, list[int]] = defaultdict(list)
    wanting = everyone - muted
    if wanting:
        rows = Webhook.objects.filter(enabled=True, user_id__in=list(wanting))
        for pk, user_id in rows.order_by("pk").values_list("pk", "user_id"):
            user_hooks[user_id].append(pk)
    site_hooks: dict[int, list[int]] = defaultdict(list)
    site_ids = {n.site.pk for n in notices if n.site is not None}
    if site_ids:
        rows = Webhook.objects.filter(enabled=True, site_id__in=list(site_ids))
        for pk, site_id in rows.order_by("pk").values_list("pk", "site_id"):
            site_hooks[site_id].append(pk)
    out = []
    for notice, group in zip(notices, people, strict=True):
        wanted = [pk for pk in group if pk not in muted]
        planned = [(EMAIL, pk) for pk in wanted if group[pk].email]
        planned += [(WEBHOOK, hook) for pk in wanted for hook in user_hooks.get(pk, [])]
        if notice.site is not None:
            planned += [(WEBHOOK, hook) for hook in site_hooks.get(notice.site.pk, [])]
        out.append(planned)
    return out


def _queue_batches(batches: list[tuple[list[tuple[str, int]], dict[str, Any]]]) -> None:
    for deliveries, payload in batches:
        _queue_all(deliveries, payload)


def _queue_all(deliveries: list[tuple[str, int]], payload: dict[str, Any]) -> None:
    for channel, target in deliveries:
        try:
            enqueue_delivery(channel, target, payload)
        except Exception:  # a broker that is down loses this one, not the caller's work
            log.exception(
                "could not queue the %s delivery to %s %s", payload["kind"], channel, target
            )


def enqueue_delivery(channel: str, target: int, payload: dict[str, Any]) -> None:
    from .tasks import deliver_notification

    deliver_notification.apply_async(args=(channel, target, payload))


# -- preferences -----------------------------------------------------------------------------
def notification_kinds_of(user: User) -> dict[str, bool]:
    """Each kind and whether the user receives it (all on without a row)."""
    row = NotificationPreference.objects.filter(user=user).first()
    muted = set(row.muted_kinds) if row else set()
    return {k: k not in muted for k in NotificationKind.values}


def notification_kinds_set(*, user: User, kinds: dict[str, bool], actor: User) -> dict[str, bool]:
    """Turn kinds on or off (kinds not named keep their state)."""
    unknown = sorted(set(kinds) - set(NotificationKind.values))
    if unknown:
        raise ValidationFailed(
            f"unknown notification kinds: {', '.join(unknown)}; known: "
            + ", ".join(NotificationKind.values),
            field="kinds",
        )
    current = notification_kinds_of(user)
    current.update({k: bool(v) for k, v in kinds.items()})
    muted = sorted(k for k, on in current.items() if not on)
    with transaction.atomic():
        NotificationPreference.objects.update_or_create(user=user, defaults={"muted_kinds": muted})
        audit_record(
            actor=actor,
            action="notification.preferences",
            obj=user,
            summary="muted: " + (", ".join(muted) or "nothing"),
            changes={"muted": muted},
        )
    return current


# -- webhooks ---------------------------------------------------------------------------------
def webhook_url_check(url: str) -> str:
    """An https URL, or http to an allowed host (NOTIFY_WEBHOOK_HTTP_HOSTS)."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        host, parts = "", urlsplit("")
    if not host or len(url) > URL_MAX or parts.fragment:
        raise ValidationFailed(
            "a webhook is an http(s) URL with a host, no fragment",
            code=ErrorCode.INVALID_WEBHOOK,
            field="url",
        )
    allowed = {h.lower() for h in settings.NOTIFY_WEBHOOK_HTTP_HOSTS}
    if parts.scheme == "https" or (parts.scheme == "http" and host.lower() in allowed):
        return url
    raise ValidationFailed(
        "a webhook URL must be https"
        + (f" (http only to {', '.join(sorted(allowed))})" if allowed else ""),
        code=ErrorCode.INVALID_WEBHOOK,
        field="url",
    )


def webhook_of(*, user: User | None = None, site: Site | None = None) -> Webhook | None:
    return Webhook.objects.filter(user=user, site=site).first()


def webhook_set(
    *,
    actor: User,
    url: str,
    secret: str | None = None,
    user: User | None = None,
    site: Site | None = None,
    enabled: bool = True,
) -> Webhook:
    """Set the webhook of a user (theirs or staff's doing) or of a site (staff only).

    `secret=None` keeps the current secret. The audit entry names the URL's host only:
    a URL may carry a token, and the secret never leaves the row."""
    from .selectors import require_staff

    if (user is None) == (site is None):
        raise ValidationFailed("a webhook belongs to a user or to a site")
    if site is not None or (user is not None and user.pk != actor.pk):
        require_staff(actor, "set another's webhook")
    url = webhook_url_check(url)
    with transaction.atomic():
        row = webhook_of(user=user, site=site) or Webhook(user=user, site=site)
        row.url = url
        if secret is not None:
            row.secret = secret
        row.enabled = enabled
        row.full_clean(exclude=["user", "site"])
        row.save()
        audit_record(
            actor=actor,
            action="webhook.set",
            obj=row,
            summary=f"webhook to {urlsplit(url).hostname} ({'on' if enabled else 'off'})",
            changes={"host": urlsplit(url).hostname, "secret_changed": secret is not None},
        )
    return row


def webhook_remove(*, webhook: Webhook, actor: User) -> None:
    from .selectors import require_staff

    if webhook.user_id != actor.pk:
        require_staff(actor, "remove another's webhook")
    with transaction.atomic():
        audit_record(actor=actor, action="webhook.remove", obj=webhook, summary="webhook removed")
        webhook.delete()


def notification_settings_update(
    *,
    user: User,
    kinds: dict[str, bool] | None = None,
    webhook_url: str | None = None,
    webhook_secret: str | None = None,
    webhook_enabled: bool | None = None,
) -> None:
    """The profile page's and the API's one write: kinds, and the user's own webhook
    (`webhook_url=""` removes it; None leaves each part as it is)."""
    with transaction.atomic():
        if kinds is not None:
            notification_kinds_set(user=user, kinds=kinds, actor=user)
        hook = webhook_of(user=user)
        if webhook_url == "":
            if hook is not None:
                webhook_remove(webhook=hook, actor=user)
            return
        if webhook_url is None and webhook_secret is None and webhook_enabled is None:
            return
        if webhook_url is None and hook is None:
            raise ValidationFailed("set a webhook URL first", field="webhook_url")
        try:
            webhook_set(
                actor=user,
                user=user,
                url=webhook_url if webhook_url is not None else hook.url,  # type: ignore[union-attr]
                secret=webhook_secret,
                enabled=webhook_enabled
                if webhook_enabled is not None
                else (hook.enabled if hook else True),
            )
        except ValidationFailed as exc:  # the field is `webhook_url` on these faces
            if exc.extra.get("field") == "url":
                exc.extra["field"] = "webhook_url"
            raise
