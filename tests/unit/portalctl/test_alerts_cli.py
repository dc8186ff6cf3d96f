"""How portalctl prints alerts (no server): the figure as a share, and a container's open
alerts on the one line of `containers show`. The command end to end is
tests/functional/cli/test_alerts.py."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from portalctl.app import app
from portalctl.commands.alerts import alerts_text, figure


def test_a_containers_open_alerts_on_one_line() -> None:
    memory = {
        "kind": "memory",
        "since": "2026-03-01T10:00:00Z",
        "raised_at": "2026-03-01T10:05:00Z",
        "value": 0.962,
        "message": "memory at 96% of its limit, memory pressure 40%",
    }
    cpu = {"kind": "cpu", "since": "2026-03-01T11:00:00Z", "value": 1.0, "message": ""}
    assert alerts_text([]) == alerts_text(None) == "none"
    assert alerts_text([memory, cpu]) == (
        "memory since 2026-03-01 10:00:00: memory at 96% of its limit, memory pressure 40%; "
        "cpu since 2026-03-01 11:00:00: 100%"
    )
    assert figure({"value": None}) == "-" and figure({"value": 0.5}) == "50%"


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--state", "pending"], "--state is open, cleared or all"),
        (["--kind", "disk"], "--kind is memory or cpu"),
    ],
)
def test_bad_options_are_usage_errors_before_any_request(
    args: list[str], said: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from portalctl.errors import CliError
    from portalctl.state import SESSION

    def no_api() -> None:
        raise AssertionError("no request for a usage error")

    monkeypatch.setattr(SESSION, "api", no_api)
    with pytest.raises(CliError) as caught:
        CliRunner().invoke(app, ["alerts", *args], catch_exceptions=False)
    assert caught.value.exit_code == 2 and said in caught.value.message
