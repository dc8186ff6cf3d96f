"""The pieces of portalctl that need no server: Server-Sent Events parsing, sizes, the
API's errors turned into exit codes and lines, the config file (its mode and profiles).
The client end to end is tests/functional/cli."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from portalctl import config
from portalctl.commands.catalog import cpu_use, load_average
from portalctl.commands.containers import size_gib, size_mib
from portalctl.errors import ApiError, CliError, Exit
from portalctl.sse import events


def test_events_are_parsed_as_the_portal_sends_them() -> None:
    lines = [
        "retry: 1000",
        "",
        "id: 7",
        "event: log",
        'data: {"id": 7}',
        "",
        ": keep-alive",
        "",
        "event: job",
        "data: {",
        'data: "status": "running"}',
        "",
        "event: end",
        "data: {}",
    ]
    got = [(e.event, e.data, e.id) for e in events(lines)]
    # The last event has no blank line after it: a dropped stream, so it never counts.
    assert got == [("log", '{"id": 7}', "7"), ("job", '{\n"status": "running"}', None)]


def test_sizes() -> None:
    assert [size_mib(v, "--memory") for v in ("512", "512M", "2G", "1GiB")] == [
        512,
        512,
        2048,
        1024,
    ]
    assert [size_gib(v, "--disk") for v in ("8", "8G", "10GiB")] == [8, 8, 10]
    assert size_mib(None, "--memory") is None
    for bad in ("2T", "", "1.5G", "-1"):
        with pytest.raises(CliError) as caught:
            size_mib(bad, "--memory")
        assert caught.value.exit_code == Exit.USAGE


def test_api_errors_give_exit_codes_and_field_lines_said_once() -> None:
    codes = {s: ApiError(s, "x", "m", {}).exit_code for s in (400, 401, 403, 404, 409, 429, 500)}
    assert codes == {
        400: Exit.ERROR,
        401: Exit.AUTH,
        403: Exit.AUTH,
        404: Exit.NOT_FOUND,
        409: Exit.CONFLICT,
        429: Exit.ERROR,
        500: Exit.ERROR,
    }
    error = ApiError(
        400,
        "invalid",
        "hostname: must be a DNS label",
        {"hostname": ["must be a DNS label", "is reserved"], "cores": ["too many"]},
    )
    assert error.details == ["hostname: is reserved", "cores: too many"]


def test_the_config_file_is_private_and_keeps_profiles_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "conf" / "portalctl" / "config.ini"
    monkeypatch.setenv("PORTALCTL_CONFIG", str(path))
    for name in ("PORTAL_URL", "PORTAL_TOKEN", "PORTALCTL_PROFILE", "PORTAL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    config.save(config.Profile("default", url="https://a.example", token="t1", token_id="1"))
    config.save(config.Profile("ci", url="https://b.example", token="t2"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert (config.load(None).token, config.load("ci").token) == ("t1", "t2")
    monkeypatch.setenv("PORTAL_TOKEN", "from-env")
    chosen = config.load("ci")
    assert (chosen.url, chosen.token, chosen.from_env) == ("https://b.example", "from-env", True)
    monkeypatch.delenv("PORTAL_TOKEN")
    config.remove_secret("default")
    assert config.load(None).token == "" and config.load(None).url == "https://a.example"
    assert config.load("ci").token == "t2"


def test_nodes_list_shows_cpu_use_and_the_load_averages() -> None:
    node = {"max_cpu": 16, "cpu_load": 0.234, "load_1": 3.74, "load_5": 3.366, "load_15": 3}
    assert cpu_use(node) == "23.4% of 16"
    assert load_average(node) == "3.74 3.37 3.00"
    never = {"max_cpu": None, "cpu_load": None, "load_1": None, "load_5": None, "load_15": None}
    assert cpu_use(never) == "-" and load_average(never) == "-"
    assert load_average({**never, "load_1": 0.5}) == "0.50 - -"
