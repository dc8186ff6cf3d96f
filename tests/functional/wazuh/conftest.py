"""The Wazuh tests' cache: alerts are cached by manager and agent, and ids repeat between
tests. Their arrangements are in arrange.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()
