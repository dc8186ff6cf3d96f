"""The env input: a JSON object or a YAML mapping; anything else is an error that never
repeats a value."""

from __future__ import annotations

import json

import pytest
from lp_env import EnvError, parse_env

SECRET = "s3cr3t-Value"


def test_json_object() -> None:
    assert parse_env('{"SECRET_KEY": "abc", "WORKERS": 4, "DEBUG": false, "RATIO": 0.5}') == {
        "SECRET_KEY": "abc",
        "WORKERS": "4",
        "DEBUG": "false",
        "RATIO": "0.5",
    }


def test_yaml_mapping() -> None:
    text = """\
# the app's settings
SECRET_KEY: abc#not-a-comment
DATABASE_URL: postgres://app:pw@localhost:5432/app  # a comment
QUOTED: "a\\tb \\u00e9"
SINGLE: 'it''s: fine'
EMPTY: ""
DEBUG: false
PEM: |
  -----BEGIN KEY-----
  abc
  -----END KEY-----
FOLDED: >-
  one
  two

  three
"""
    assert parse_env(text) == {
        "SECRET_KEY": "abc#not-a-comment",
        "DATABASE_URL": "postgres://app:pw@localhost:5432/app",
        "QUOTED": "a\tb é",
        "SINGLE": "it's: fine",
        "EMPTY": "",
        "DEBUG": "false",
        "PEM": "-----BEGIN KEY-----\nabc\n-----END KEY-----\n",
        "FOLDED": "one two\nthree",
    }


def test_empty_input_is_no_env() -> None:
    assert parse_env("") == {}
    assert parse_env("  \n# nothing\n") == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"SECRET": "' + SECRET + '",}', "not valid JSON"),
        ('{"SECRET": ' + SECRET + "}", "not valid JSON"),
        ('{"A": "x", "A": "' + SECRET + '"}', "A is given twice"),
        ('{"SECRET": null}', "must be a string"),
        ('{"SECRET": ["' + SECRET + '"]}', "must be a string"),
        ('{"' + SECRET + ' X": "v"}', "not a variable name"),
        ("[1, 2]", "expected `NAME: value`"),
        ("SECRET=" + SECRET, "expected `NAME: value`"),
        ("SECRET:", "no value"),
        ("SECRET: " + SECRET + ": more", "must be quoted"),
        ("SECRET: {a: " + SECRET + "}", "not supported"),
        ("SECRET:\n  nested: " + SECRET, "no value"),
        ("A: 1\n  " + SECRET, "indented line"),
        ('SECRET: "' + SECRET, "not closed"),
        ("SECRET: '" + SECRET + "' tail", "after the closing quote"),
        ("A: 1\nA: " + SECRET, "given twice"),
        ("SECRET: |\n", "empty block"),
    ],
)
def test_bad_input_is_an_error_that_does_not_repeat_the_value(text: str, message: str) -> None:
    with pytest.raises(EnvError, match=message) as caught:
        parse_env(text)
    assert SECRET not in str(caught.value)
    assert "s3cr3t" not in str(caught.value)


@pytest.mark.parametrize(
    "secret",
    ["a: b # c", "line one\nline two\n", 'quote " and \\ backslash', "tab\tand ü and 🚀", "#x"],
)
def test_a_secret_put_in_with_to_json_comes_back_exactly(secret: str) -> None:
    """`NAME: ${{ toJSON(secrets.NAME) }}` (the README's advice): GitHub writes the value
    as a JSON string, which the YAML reading takes as a double-quoted value."""
    for to_json in (json.dumps(secret), json.dumps(secret, ensure_ascii=False)):
        assert parse_env(f"SECRET: {to_json}\nOTHER: x\n") == {"SECRET": secret, "OTHER": "x"}
