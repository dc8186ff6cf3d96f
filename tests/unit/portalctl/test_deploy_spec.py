"""The spec `portalctl deploy` sends: only what was given (the portal has the defaults),
the env from its file with `--env` over it."""

from __future__ import annotations

from pathlib import Path

import pytest

from portalctl.commands.deploy import Target, app_spec, build_spec, collect_env, services_list
from portalctl.errors import CliError, Exit

TARGET = Target("alice/shop", "main", "3f2a" * 10, "2026-02-03T04:05:06+01:00")


def test_app_has_only_what_was_given() -> None:
    assert app_spec() == {}
    assert app_spec(start="gunicorn app:app", port=9000, services=" postgresql, ,redis ") == {
        "start": "gunicorn app:app",
        "port": 9000,
        "services": ["postgresql", "redis"],
    }
    assert app_spec(install="pip install .", build="make", health="/up", access="owner") == {
        "install": "pip install .",
        "build": "make",
        "health": "/up",
        "access": "owner",
    }
    assert services_list("") == [] and services_list(None) is None
    with pytest.raises(CliError) as caught:
        app_spec(access="everyone")
    assert caught.value.exit_code == Exit.USAGE


def test_spec() -> None:
    assert build_spec(TARGET, template=None, app={}, env={}, ttl_days=None) == {
        "repository": "alice/shop",
        "ref": "main",
        "commit": "3f2a" * 10,
        "committed_at": "2026-02-03T04:05:06+01:00",
    }
    spec = build_spec(TARGET, template="debian-12", app={"start": "x"}, env={"A": "1"}, ttl_days=3)
    assert (spec["template"], spec["app"], spec["env"], spec["ttl_days"]) == (
        "debian-12",
        {"start": "x"},
        {"A": "1"},
        3,
    )


def test_env_options_win_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "env.yml"
    path.write_text("A: from-file\nB: kept\n")
    assert collect_env(["A=from-option", "C=3"], path) == {
        "A": "from-option",
        "B": "kept",
        "C": "3",
    }
    assert collect_env(None, None) == {}
