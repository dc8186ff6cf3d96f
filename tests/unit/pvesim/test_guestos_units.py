"""Guest emulation, without a CT: unit files, environment files and command lines read as
systemd reads them (pvesim/guestos/units.py)."""

from __future__ import annotations

import pytest

from pvesim.guestos.units import (
    UnitError,
    expand_words,
    load_unit,
    parse_command,
    parse_env_file,
    parse_environment,
    parse_sections,
    parse_timespan,
    specifiers,
    split_words,
    unit_name,
)

APP = """\
# a comment
[Unit]
Description=acme/shop@main
After=network-online.target

[Service]
; another comment
WorkingDirectory=-/srv/app
EnvironmentFile=-/etc/cluster-portal/app.env
Environment="GREETING=hello world" PORT=8080
Environment=MODE=prod
ExecStartPre=-/usr/bin/env true
ExecStart=/bin/sh -c 'node server.js --port 3000 && echo '"'"'up'"'"'' \\
    --extra
Restart=on-failure
TimeoutStopSec=1min 30s

[Install]
WantedBy=multi-user.target
Alias=shop.service
"""


def test_a_unit_with_every_setting_the_deploy_writes() -> None:
    unit = load_unit("app.service", APP)
    assert unit.description == "acme/shop@main"
    assert unit.type == "simple" and not unit.record_only
    assert (unit.working_directory, unit.working_directory_optional) == ("/srv/app", True)
    assert unit.environment_files == [("/etc/cluster-portal/app.env", True)]
    assert unit.environment == {"GREETING": "hello world", "PORT": "8080", "MODE": "prod"}
    assert unit.exec_start_pre[0].ignore_failure
    [start] = unit.exec_start
    # shlex.quote's '"'"' pieces join into one word, as sh and systemd both read them
    assert start.words == ["/bin/sh", "-c", "node server.js --port 3000 && echo 'up'", "--extra"]
    assert unit.timeout_stop == 90.0
    assert (unit.wanted_by, unit.aliases) == (["multi-user.target"], ["shop.service"])


def test_sections_continuations_and_list_resets() -> None:
    sections = parse_sections(
        "[Service]\nExecStartPre=/bin/a\nExecStartPre=\nExecStartPre=/bin/b\n"
        "ExecStart=/bin/c \\\n# a comment inside a continuation is skipped\n  d\n"
    )
    assert sections["Service"]["ExecStartPre"] == ["/bin/b"]
    assert split_words(sections["Service"]["ExecStart"][0]) == ["/bin/c", "d"]
    with pytest.raises(UnitError, match="inside a"):
        parse_sections("ExecStart=/bin/true\n")


def test_only_a_oneshot_may_have_several_exec_starts() -> None:
    text = "[Service]\nExecStart=/bin/a\nExecStart=/bin/b\n"
    with pytest.raises(UnitError, match="more than one ExecStart"):
        load_unit("x.service", text)
    unit = load_unit("x.service", "[Service]\nType=oneshot\nRemainAfterExit=yes\n" + text[10:])
    assert len(unit.exec_start) == 2 and unit.remain_after_exit


def test_a_package_unit_is_record_only() -> None:
    unit = load_unit(
        "redis-server.service",
        "[Service]\nType=oneshot\nRemainAfterExit=yes\nX-Pvesim-Package=redis-server\n",
    )
    assert unit.record_only and unit.package == "redis-server"


def test_command_prefixes_and_words() -> None:
    cmd = parse_command("-@/usr/bin/python3 app-server -m http.server")
    assert cmd.ignore_failure and cmd.argv0 == "app-server"
    assert cmd.words == ["/usr/bin/python3", "-m", "http.server"]
    assert not parse_command(":/bin/echo $HOME").expand_env
    assert split_words(r'a "b c" \"d\" e\ f "tab\there"') == ["a", "b c", '"d"', "e f", "tab\there"]
    with pytest.raises(UnitError, match="unbalanced"):
        split_words('"open')


def test_variables_on_a_command_line() -> None:
    cmd = parse_command("/bin/app $ARGS ${ONE} --x=${ONE} 'lit $ARGS' $UNSET")
    env = {"ARGS": "-a  -b", "ONE": "x y"}
    assert expand_words(cmd, env) == ["/bin/app", "-a", "-b", "x y", "--x=x y", "lit $ARGS"]
    assert expand_words(parse_command(":/bin/app $ARGS"), env) == ["/bin/app", "$ARGS"]


def test_specifiers() -> None:
    values = {"%": "%", "n": "web@blue.service", "i": "blue"}
    assert specifiers("%n %i 100%% %z", values) == "web@blue.service blue 100% %z"


def test_environment_file_as_the_deploy_writes_it() -> None:
    # containers/deploy_script.py: KEY="value" with \\ and \" escaped, nothing expanded.
    tricky = 'it\'s "quoted" $HOME `id` \\n'
    escaped = tricky.replace("\\", "\\\\").replace('"', '\\"')
    text = (
        f'QUOTE="{escaped}"\n'
        'DATABASE_URL="postgres://u:p@h/db?x=1&y=2"\n'
        "# comment\n; comment\n\n"
        "  BARE = value with spaces   \n"
        "SINGLE='kept \\n as is'\n"
        "export EXPORTED=1\n"
        'MULTI="line one\nline two"\n'
        "CONT=a\\\nb\n"
        "not an assignment\n"
    )
    assert parse_env_file(text) == {
        "QUOTE": tricky,
        "DATABASE_URL": "postgres://u:p@h/db?x=1&y=2",
        "BARE": "value with spaces",
        "SINGLE": "kept \\n as is",
        "EXPORTED": "1",
        "MULTI": "line one\nline two",
        "CONT": "ab",
    }


def test_environment_lines() -> None:
    assert parse_environment(['"A=1 2" B=3', "C=", "not-a-name=x"]) == {
        "A": "1 2",
        "B": "3",
        "C": "",
    }


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("90s", 90.0), ("1min 30s", 90.0), ("500ms", 0.5), ("2h", 7200.0)],
)
def test_time_spans(text: str, seconds: float) -> None:
    assert parse_timespan(text) == seconds


def test_unit_names() -> None:
    assert unit_name("app") == "app.service"
    assert unit_name("app.service") == "app.service"
    assert unit_name("multi-user.target") == "multi-user.target"
