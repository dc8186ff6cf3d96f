"""Writes of a site's Wazuh manager settings (the admin calls these, never Model.save), and
the admin's "test the connection".

Each save validates the whole row (full_clean plus the rules below), records one audit
entry that names changed secrets without their values, and keeps a secret that is left
blank: an operator never has to type a password again to change something else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import transaction

from auth.audit import audit_record
from auth.selectors import require_staff
from portal.errors import FieldErrors, ValidationFailed

from .client import IndexerClient, WazuhClient
from .models import EnrolmentMode, WazuhManager

if TYPE_CHECKING:
    from django.contrib.auth.models import User

# What an operator sets, in the order the admin's form shows it.
MANAGER_FIELDS = (
    "site",
    "enabled",
    "api_url",
    "api_user",
    "api_password",
    "ca_bundle",
    "verify_tls",
    "registration_address",
    "registration_port",
    "agent_port",
    "enrolment_mode",
    "enrolment_secret",
    "default_group",
    "indexer_url",
    "indexer_user",
    "indexer_password",
    "disconnect_alert_minutes",
)
SECRET_FIELDS = frozenset({"api_password", "enrolment_secret", "indexer_password"})
SHOWN_SECRET = "(set)"


def _assign(manager: WazuhManager, values: Mapping[str, Any]) -> list[str]:
    unknown = set(values) - set(MANAGER_FIELDS)
    if unknown:
        raise ValidationFailed(
            f"cannot set {', '.join(sorted(unknown))} here", field=sorted(unknown)[0]
        )
    changed = []
    for name, value in values.items():
        if name in SECRET_FIELDS and not value:
            continue  # blank: keep the stored secret
        if manager._state.adding or getattr(manager, name, None) != value:
            setattr(manager, name, value)
            changed.append(name)
    return changed


def _validate(manager: WazuhManager) -> None:
    errors = FieldErrors()
    try:
        manager.full_clean()
    except ValidationError as exc:
        for name, messages in exc.message_dict.items():
            errors.add(f"{name}: {' '.join(messages)}", field=name)
    if manager.enabled and not manager.api_password:
        errors.add("an enabled manager needs the API user's password", field="api_password")
    if manager.enrolment_mode == EnrolmentMode.V5_TOKEN and not manager.enrolment_secret:
        errors.add("Wazuh 5.x enrolment needs the enrolment token", field="enrolment_secret")
    if manager.indexer_url and not manager.indexer_password:
        errors.add("an indexer URL needs the indexer user's password", field="indexer_password")
    errors.raise_if_any()


def _shown(manager: WazuhManager, changed: list[str]) -> dict[str, Any]:
    return {k: (SHOWN_SECRET if k in SECRET_FIELDS else str(getattr(manager, k))) for k in changed}


def wazuh_manager_save(
    *, actor: User | None, values: Mapping[str, Any], manager: WazuhManager | None = None
) -> WazuhManager:
    """Add a site's manager (`manager` None) or change one; the saved row.

    Secrets left blank are kept; refused input raises ValidationFailed with every field's
    error. One audit entry names the changed fields (secrets as "(set)")."""
    require_staff(actor, "configure a Wazuh manager")
    with transaction.atomic():
        if manager is None:
            row = WazuhManager()
        else:
            row = WazuhManager.objects.select_for_update().get(pk=manager.pk)
        changed = _assign(row, values)
        if not changed:
            return row
        _validate(row)
        row.save()
        verb = "update" if manager is not None else "create"
        audit_record(
            actor=actor,
            action=f"wazuh_manager.{verb}",
            obj=row,
            summary=f"{'changed ' + ', '.join(changed) + ' of' if manager else 'added'} {row}",
            changes=_shown(row, changed),
        )
    if manager is not None:
        for name in changed:
            setattr(manager, name, getattr(row, name))
    return row


@dataclass(frozen=True)
class ManagerCheck:
    """What `wazuh_manager_test` found: the agents' counts by state, and how many alerts
    the indexer holds (None: no indexer configured)."""

    summary: dict[str, int]
    alerts: int | None

    def describe(self) -> str:
        counts = ", ".join(
            f"{v} {k.replace('_', ' ')}" for k, v in self.summary.items() if k != "total"
        )
        text = f"connected: {self.summary.get('total', 0)} agents ({counts})"
        if self.alerts is not None:
            text += f"; the indexer answered ({self.alerts} alerts)"
        return text


def wazuh_manager_test(*, manager: WazuhManager, actor: User | None) -> ManagerCheck:
    """Log in to the manager and read its agents' summary, and search the indexer if it
    has one. Raises the client's WazuhError / WazuhUnavailable (never holding a secret);
    audits a success."""
    require_staff(actor, "test a Wazuh manager")
    summary = WazuhClient.for_manager(manager).agents_summary()
    alerts = None
    if manager.has_indexer:
        alerts = IndexerClient.for_manager(manager).site_top_alerts(min_level=0, size=0).total
    check = ManagerCheck(summary=summary, alerts=alerts)
    audit_record(
        actor=actor,
        action="wazuh_manager.test",
        obj=manager,
        summary=f"tested {manager}: {check.describe()}"[:500],
        changes={"summary": summary, "alerts": alerts},
    )
    return check
