"""A first push that took a warm pool member: its plan, and which undo a failure gets.
End to end in tests/functional/launchpad/test_push_claim.py."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from containers.jobs import kind_of
from containers.jobs.deploy import DEPLOY_STEPS, _creating
from containers.models import JobKind, StepState, WazuhManager
from containers.pool.claim import MEMBER_PARAM
from tests.unit.containers.test_wazuh_enrolment import a_container

pytestmark = pytest.mark.django_db

CLAIMED = {"create": True, MEMBER_PARAM: 7}


def steps_up_to(plan: list[dict[str, Any]], failed: str) -> list[dict[str, Any]]:
    """Every step before `failed` done, `failed` failed, the rest pending."""
    out, seen = [], False
    for s in plan:
        if s["name"] == failed:
            out.append({**s, "state": StepState.FAILED})
            seen = True
        else:
            out.append({**s, "state": StepState.PENDING if seen else StepState.DONE})
    return out


def test_a_claimed_first_push_plans_the_claims_steps_then_the_deploys() -> None:
    c = a_container()
    WazuhManager.objects.create(site=c.site, api_url="https://w.example.org:55000", api_user="u")
    names = [s["name"] for s in kind_of(JobKind.DEPLOY).plan(CLAIMED, c)]
    deploy = [name for name, _ in DEPLOY_STEPS]
    assert names[: names.index("ssh")] == [
        "configure",
        "disk",
        "start",
        "inspect",
        "ssh_keys",
        "access_group",
        "realm_sync",
        "proxmox_acl",
        "gateway",
        "wazuh_enrol",
    ]
    assert names[names.index("ssh") :] == deploy


@pytest.mark.parametrize(
    ("params", "failed", "creating"),
    [
        (CLAIMED, "configure", True),
        (CLAIMED, "ssh_keys", True),
        # After every step a plain create shares with the claim: still the claim's part.
        (CLAIMED, "wazuh_enrol", True),
        (CLAIMED, "ssh", False),
        (CLAIMED, "health", False),
        ({"create": True}, "wazuh_enrol", True),
        ({}, "build", False),  # a push that updates in place
    ],
)
def test_a_failure_before_the_deploy_steps_is_undone_as_a_failed_create(
    params: dict[str, Any], failed: str, creating: bool
) -> None:
    c = a_container()
    WazuhManager.objects.create(site=c.site, api_url="https://w.example.org:55000", api_user="u")
    plan = kind_of(JobKind.DEPLOY).plan(params, c)
    job = SimpleNamespace(params=params, steps=steps_up_to(plan, failed))
    assert _creating(SimpleNamespace(job=job)) is creating  # type: ignore[arg-type]
