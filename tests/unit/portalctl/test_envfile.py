"""The env of `portalctl deploy`: `--env KEY=VALUE` and the three forms of `--env-file`.
Whatever is not read exactly is a usage error (exit 2) naming the line, never a value."""

from __future__ import annotations

from pathlib import Path

import pytest

from portalctl.envfile import env_options, parse_env, read_env_file
from portalctl.errors import CliError, Exit

SECRET = "s3cr3t-value"


def refused(content: str) -> str:
    with pytest.raises(CliError) as caught:
        parse_env(content, "env.txt")
    assert caught.value.exit_code == Exit.USAGE
    assert SECRET not in caught.value.message
    return caught.value.message


def test_env_options_split_at_the_first_equals_sign() -> None:
    assert env_options(["A=1", "URL=postgres://u:p@h/db?x=y", "EMPTY=", "A=2"]) == {
        "A": "2",
        "URL": "postgres://u:p@h/db?x=y",
        "EMPTY": "",
    }
    assert env_options(None) == {}
    for bad in (SECRET, f"={SECRET}"):
        with pytest.raises(CliError) as caught:
            env_options(["OK=1", bad])
        assert caught.value.exit_code == Exit.USAGE
        assert "2nd" in caught.value.message and SECRET not in caught.value.message


def test_a_json_object() -> None:
    content = '{"SECRET_KEY": "a\\"b", "WORKERS": 4, "RATIO": 0.5, "DEBUG": false, "E": ""}'
    assert parse_env(content, "env.json") == {
        "SECRET_KEY": 'a"b',
        "WORKERS": "4",
        "RATIO": "0.5",
        "DEBUG": "false",
        "E": "",
    }


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ('{"A": "x",}', "invalid JSON at line 1"),
        (f'{{"A": "{SECRET}"', "invalid JSON"),
        (f'{{"A": "{SECRET}", "A": "y"}}', "A is given twice"),
        ('{"A": null}', "not null"),
        ('{"A": {"B": "c"}}', "not an object"),
        ('{"A": ["c"]}', "not a list"),
    ],
)
def test_bad_json_is_an_error(content: str, says: str) -> None:
    assert says in refused(content)


def test_a_json_array_is_not_an_env() -> None:
    # Neither a JSON object, nor a YAML mapping, nor KEY=VALUE lines.
    assert "not an env file" in refused(f'["A={SECRET}"]')


def test_a_flat_yaml_mapping() -> None:
    content = f"""---
# the app's settings
SECRET_KEY: {SECRET}
DATABASE_URL: postgres://app:pw@localhost/app   # a comment
PASSWORD: pa#ss
QUOTED: "tab\\there: \\"x\\""
SINGLE: 'it''s # not a comment'
"QUOTED_KEY": yes
WORKERS: 4
EMPTY:
NOTHING: ~
"""
    assert parse_env(content, "env.yml") == {
        "SECRET_KEY": SECRET,
        "DATABASE_URL": "postgres://app:pw@localhost/app",
        "PASSWORD": "pa#ss",
        "QUOTED": 'tab\there: "x"',
        "SINGLE": "it's # not a comment",
        "QUOTED_KEY": "yes",
        "WORKERS": "4",
        "EMPTY": "",
        "NOTHING": "",
    }


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (f"A: 1\nB:\n  C: {SECRET}\n", "line 3: nested YAML"),
        ("A: 1\nB: |\n  multi\n", "line 2: B: only one-line values"),
        (f"A: [{SECRET}]\n", "line 1: A: only one-line values"),
        ("A: &anchor x\n", "only one-line values"),
        (f'A: "{SECRET}\n', "line 1: a quoted value that does not end"),
        (f'A: "{SECRET}\\x41"\n', "an escape in a quoted value"),
        (f"A: 1\nA: {SECRET}\n", "line 2: A is given twice"),
        (f"A: 1\n{SECRET}\n", "line 2: not NAME: value"),
        ("A: 1\n- b\n", "line 2: not NAME: value"),
    ],
)
def test_yaml_beyond_a_flat_mapping_is_an_error(content: str, says: str) -> None:
    assert says in refused(content)


def test_key_value_lines() -> None:
    content = f"""# .env
SECRET_KEY={SECRET}
export DEBUG=0
SPACED = with spaces inside   # and a comment
HASH=pa#ss
DOUBLE="line\\nbreak"
SINGLE='$NOT_EXPANDED \\n'
EMPTY=
URL=https://example.org/?a=b
"""
    assert parse_env(content, ".env") == {
        "SECRET_KEY": SECRET,
        "DEBUG": "0",
        "SPACED": "with spaces inside",
        "HASH": "pa#ss",
        "DOUBLE": "line\nbreak",
        "SINGLE": "$NOT_EXPANDED \\n",
        "EMPTY": "",
        "URL": "https://example.org/?a=b",
    }


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (f"A=1\n{SECRET}\n", "line 2: not KEY=VALUE"),
        (f"A=1\nB: {SECRET}\n", "line 2: not KEY=VALUE"),
        (f"A=1\nA={SECRET}\n", "line 2: A is given twice"),
        (f"A='{SECRET}\n", "line 1: a quoted value that does not end"),
        (f"{SECRET} and more words\n", "not an env file"),
    ],
)
def test_bad_key_value_lines_are_errors(content: str, says: str) -> None:
    assert says in refused(content)


def test_empty_and_comment_only_files_are_an_empty_env() -> None:
    assert parse_env("", "e") == {} and parse_env("# nothing\n\n---\n", "e") == {}


def test_files_are_read_as_utf8_with_or_without_a_bom(tmp_path: Path) -> None:
    path = tmp_path / "env.json"
    path.write_bytes(b'\xef\xbb\xbf{"NAME": "J\xc3\xbcrgen"}')
    assert read_env_file(path) == {"NAME": "Jürgen"}
    path.write_bytes(b"A=\xff\n")
    with pytest.raises(CliError, match="not UTF-8") as caught:
        read_env_file(path)
    assert caught.value.exit_code == Exit.USAGE
    with pytest.raises(CliError, match="cannot read it") as caught:
        read_env_file(tmp_path / "missing.env")
    assert caught.value.exit_code == Exit.USAGE
