"""Quotas: each limit, the most generous group winning, resizes, overrides, and resource
requests approved (applied) or denied.

The case against a real directory (slapd); the others, and the helpers, are in
tests/unit/accounts/test_quotas.py.
"""

from __future__ import annotations

import pytest

from tests.unit.accounts.test_quotas import make, policy, site

__all__ = ["site"]  # the fixture, shared

pytestmark = pytest.mark.django_db


def test_mirrored_directory_groups_carry_their_policy(ldap_settings, site) -> None:
    from django.test import Client

    policy(None, max_container_memory_mib=1024)
    policy("students", max_container_memory_mib=4096)
    Client().post("/accounts/login/", {"username": "carol", "password": "carol-pw"})
    from django.contrib.auth import get_user_model

    carol = get_user_model().objects.get(username="carol")
    assert make(site, carol, "fits", memory_mib=4096).memory_mib == 4096
