"""The unit room: tests that start no real component (they may use the database).

At collection, a test under tests/unit whose fixture closure includes a fixture that starts
a component, or that carries a marker of the functional room, is an error that names it
and says why: such a test belongs in tests/functional.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

# Fixtures that start a real component, or need one (tests/conftest.py,
# tests/fixtures/networking.py and launchpad.py, pytest-django's live server).
COMPONENT_FIXTURES = frozenset(
    {
        "redis_url",
        "sim",
        "cluster",
        "local_gateway",
        "gateway_worker",
        "worker_env",
        "make_worker",
        "worker",
        "own_workers",
        "browser",
        "live_server",
        "site_127",
        "gw_site",
        "apply_here",
        "stand_ins",
        "launchpad_procs",
        "launchpad_stack",
        "wazuh_server",
        "wazuh",
    }
)
FUNCTIONAL_MARKERS = frozenset({"e2e", "gateway", "ldap", "browser", "demo", "reliability"})


def _components(item: pytest.Item) -> list[str]:
    """The component fixtures in the item's closure; a name the test parametrizes directly
    (e.g. `page` as a page number) is a value, not the fixture."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return []
    found = []
    for name in info.names_closure:
        if name not in COMPONENT_FIXTURES:
            continue
        defs = info.name2fixturedefs.get(name, ())
        if defs and defs[-1].func.__name__ == "get_direct_param_fixture_func":
            continue
        found.append(name)
    return sorted(found)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    wrong = []
    for item in items:
        if not item.path.is_relative_to(HERE):
            continue
        reasons = [f"fixture {name}" for name in _components(item)]
        reasons += [f"marker {m.name}" for m in item.iter_markers() if m.name in FUNCTIONAL_MARKERS]
        if reasons:
            wrong.append(f"{item.nodeid}: {', '.join(sorted(set(reasons)))}")
    if wrong:
        raise pytest.UsageError(
            "tests/unit starts no real component; move these to tests/functional:\n  "
            + "\n  ".join(wrong)
        )
