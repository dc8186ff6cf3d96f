"""schemathesis against the live server's OpenAPI document, as three callers: an ordinary
user, staff, and a read-only token. A fixed seed (derandomize) and a bounded number of
examples per operation keep it to about a minute; any 5xx or response that does not match
the document fails."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from auth import tokens as auth_tokens
from auth.models import Collaborator
from containers import resource_requests, services
from tests.factories import UserFactory, make_site
from tests.figures import count_5xx

pytestmark = [pytest.mark.security, pytest.mark.django_db(transaction=True)]

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "12"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# A caller must not revoke its own token half-way through (the API matrix covers revoking).
SKIP = {("DELETE", "/api/v1/tokens/{id}/")}


STATUSES: dict[int, int] = {}


@dataclass
class Finding:
    caller: str
    method: str
    path: str
    status: int
    message: str
    request: str

    def __str__(self) -> str:
        return f"[{self.caller}] {self.method} {self.path} -> {self.status}: {self.message}\n    {self.request}"


@pytest.fixture
def callers(live_server: Any, worker_env: dict[str, str]) -> dict[str, str]:
    """Tokens of the three callers, over a small world to explore (no worker: jobs stay queued)."""
    site = make_site(None)
    owner = UserFactory(username="owner")
    collab = UserFactory(username="collab")
    staff = UserFactory(username="staff", is_staff=True)
    job = services.container_create(owner=owner, hostname="app", template=site.templates.get())
    Collaborator.objects.create(container=job.container, user=collab, added_by=owner)
    resource_requests.resource_request_create(
        user=owner, kind="quota", reason="room for a course project", limits={"max_containers": 8}
    )
    tokens = {}
    for caller, user, scope in (
        ("user", owner, "write"),
        ("staff", staff, "write"),
        ("read", owner, "read"),
    ):
        _, tokens[caller] = auth_tokens.token_create(user=user, name=f"st-{caller}", scope=scope)
    return tokens


def explore(schema: Any, base_url: str, caller: str, token: str) -> tuple[int, list[Finding]]:
    findings: list[Finding] = []
    calls = 0
    headers = {"Authorization": f"Bearer {token}"}
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SKIP:
            continue
        calls += _explore_one(operation, base_url, caller, headers, findings)
    return calls, findings


def _explore_one(
    operation: Any, base_url: str, caller: str, headers: dict[str, str], findings: list[Finding]
) -> int:
    calls = 0

    @hypothesis.settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis.given(
        case=operation.as_strategy(GenerationMode.POSITIVE)
        | operation.as_strategy(GenerationMode.NEGATIVE)
    )
    def run(case: Any) -> None:
        nonlocal calls
        calls += 1
        response = case.call(base_url=base_url, headers=headers)
        STATUSES[response.status_code] = STATUSES.get(response.status_code, 0) + 1
        if response.status_code >= 500:
            count_5xx()
        try:
            case.validate_response(response, checks=CHECKS)
        except BaseExceptionGroup as exc:  # every failure is recorded, then judged
            text = " | ".join(
                str(e).strip().splitlines()[0] for e in exc.exceptions if str(e).strip()
            )
            query = dict(case.query or {})
            body = response.text[:200] if response.status_code >= 400 else ""
            findings.append(
                Finding(
                    caller,
                    operation.method.upper(),
                    operation.path,
                    response.status_code,
                    text[:300] or exc.__class__.__name__,
                    f"{case.method} {case.formatted_path} query={query} body={case.body!r:.200} "
                    f"-> {body!r}",
                )
            )

    run()
    return calls


@pytest.mark.parametrize("caller", ["user", "staff", "read"])
def test_schemathesis(callers, live_server, caller) -> None:
    STATUSES.clear()
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/v1/schema/")
    calls, findings = explore(schema, live_server.url, caller, callers[caller])
    print(
        f"schemathesis as {caller}: {calls} calls, {len(findings)} findings; statuses {sorted(STATUSES.items())}"
    )
    assert calls > 50
    assert not findings, "\n".join(str(f) for f in findings[:30])
