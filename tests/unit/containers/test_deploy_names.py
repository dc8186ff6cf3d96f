"""Deployment names: the previous system's rule where it gave DNS labels, a hashed clean
name where it did not; always a valid hostname, the same for the same input."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from hypothesis import given
from hypothesis import strategies as st

from containers.deploy_names import deployment_name, is_pull_request, pull_request_ref
from networking.validators import validate_hostname
from portal.errors import ValidationFailed


def test_the_previous_systems_names_are_kept() -> None:
    assert deployment_name("mieweb/LaunchPad", "main") == "mieweb-launchpad-main"
    assert deployment_name("mieweb/opensource-server", "feature/SSO_login") == (
        "mieweb-opensource-server-feature-sso-login"
    )
    long = deployment_name("mieweb/opensource-server", "x" * 80)
    assert len(long) == 63 and long.startswith("mieweb-opensource-server-xxx")
    assert long[54] == "-" and len(long[55:]) == 8  # 54 characters, "-", 8 hex digits


def test_pull_requests_are_named_by_the_base_repository_and_number() -> None:
    ref = pull_request_ref(42)
    assert ref == "pr-42" and is_pull_request(ref) and not is_pull_request("main")
    assert deployment_name("mieweb/launchpad", ref) == "mieweb-launchpad-pr-42"
    with pytest.raises(ValidationFailed):
        pull_request_ref(0)


def test_names_that_are_not_dns_labels_are_cleaned_and_hashed() -> None:
    trailing = deployment_name("ab/c", "fix/")  # the old rule: "ab-c-fix-"
    assert not trailing.endswith("-") and trailing.startswith("ab-c-fix-")
    assert trailing != deployment_name("ab/c", "fix")
    assert deployment_name("ab/c", "fix") == "ab-c-fix"


@pytest.mark.parametrize("repository", ["", "noslash", "a/b/c", "own er/x", "o/" + "x" * 101])
def test_a_repository_must_be_owner_and_name(repository: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        deployment_name(repository, "main")
    assert caught.value.field_errors == {"repository": [caught.value.message]}


@given(
    owner=st.from_regex(r"[A-Za-z0-9_.-]{1,40}", fullmatch=True),
    name=st.from_regex(r"[A-Za-z0-9_.-]{1,40}", fullmatch=True),
    ref=st.text(min_size=1, max_size=120),
)
def test_every_name_is_a_valid_hostname_and_stable(owner: str, name: str, ref: str) -> None:
    got = deployment_name(f"{owner}/{name}", ref)
    try:
        validate_hostname(got)
    except ValidationError as exc:  # pragma: no cover - the failure message is the point
        raise AssertionError(f"{got!r}: {exc.messages}") from exc
    assert got == deployment_name(f"{owner}/{name}", ref)
