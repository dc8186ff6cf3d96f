"""The action names the GitHub environment before the portal answers: its copy of the name
rule must give what containers/deploy_names.py gives."""

from __future__ import annotations

import pytest
from lp_events import container_name

from containers.deploy_names import deployment_name


@pytest.mark.parametrize(
    ("repository", "ref"),
    [
        ("alice/shop", "main"),
        ("Alice/Shop.Web", "feature/Login_Form"),
        ("alice/shop", "pr-7"),
        ("alice/shop", "-weird--branch-"),
        ("alice/" + "r" * 40, "feature/" + "x" * 40),
        ("an-org/a.repo", "release/2026.03"),
        ("alice/shop", "ümlaut/ß"),
        ("x" * 39, "b" * 30),
        ("9/9", "9"),
    ],
)
def test_the_action_names_a_deployment_as_the_portal_does(repository: str, ref: str) -> None:
    if "/" not in repository:
        repository = f"{repository}/repo"
    assert container_name(repository, ref) == deployment_name(repository, ref)
