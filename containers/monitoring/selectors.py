"""Reads shared by /readyz and /metrics: one query each, whatever the number of rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import OuterRef, Subquery

from networking.models import ConfigRevision, Node, RevisionStatus, Site


@dataclass(frozen=True)
class GatewayRow:
    """A site's gateway as its applies left it."""

    site: str
    requested: int
    applied: int
    pending_since: datetime | None
    state_updated_at: datetime | None
    last_success_at: datetime | None
    last_status: str | None  # the latest apply's, whatever it was
    last_duration_ms: int | None
    last_error: str

    @property
    def pending(self) -> int:
        return max(self.requested - self.applied, 0)


def gateway_rows() -> list[GatewayRow]:
    """Every site's gateway state and its latest applies, in one query."""
    revisions = ConfigRevision.objects.filter(site=OuterRef("pk")).order_by("-id")
    latest = revisions[:1]
    rows = (
        Site.objects.order_by("slug")
        .annotate(
            last_success_at=Subquery(
                revisions.exclude(status=RevisionStatus.FAILED).values("created_at")[:1]
            ),
            last_status=Subquery(latest.values("status")),
            last_duration_ms=Subquery(latest.values("duration_ms")),
            last_error=Subquery(latest.values("error")),
        )
        .values(
            "slug",
            "gateway_state__requested",
            "gateway_state__applied",
            "gateway_state__pending_since",
            "gateway_state__updated_at",
            "last_success_at",
            "last_status",
            "last_duration_ms",
            "last_error",
        )
    )
    return [
        GatewayRow(
            site=row["slug"],
            requested=row["gateway_state__requested"] or 0,
            applied=row["gateway_state__applied"] or 0,
            pending_since=row["gateway_state__pending_since"],
            state_updated_at=row["gateway_state__updated_at"],
            last_success_at=row["last_success_at"],
            last_status=row["last_status"],
            last_duration_ms=row["last_duration_ms"],
            last_error=row["last_error"] or "",
        )
        for row in rows
    ]


@dataclass(frozen=True)
class NodeRow:
    """A node as the beat probe last recorded it."""

    site: str
    name: str
    state: str
    offline_since: datetime | None
    offline_reason: str
    probed_at: datetime | None


def node_rows() -> list[NodeRow]:
    """Every node as the beat probe last recorded it, in one query."""
    rows = Node.objects.order_by("site__slug", "slot").values_list(
        "site__slug", "name", "state", "offline_since", "offline_reason", "probed_at"
    )
    return [NodeRow(*row) for row in rows]
