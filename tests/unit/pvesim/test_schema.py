"""Unit tests for the validation engine, property strings and config files."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pvesim import formats, guestconf
from pvesim.errors import ApiError, reason_phrase
from pvesim.formats import format_size, parse_size
from pvesim.schema import (
    FormatError,
    Prop,
    parse_property_string,
    print_property_string,
    split_list,
    validate,
)


def test_split_list() -> None:
    assert split_list("a;b, c  d,,") == ["a", "b", "c", "d"]
    assert split_list("a b\0c") == ["a b", "c"]
    assert split_list("") == []


def test_reason_phrase_first_line_latin1() -> None:
    assert reason_phrase("first\nsecond\n") == "first"
    assert reason_phrase("caf\u00e9 \u2603") == "caf\u00e9 ?"


def test_validate_collects_all_errors() -> None:
    schema = {
        "a": Prop("integer", minimum=1),
        "b": Prop(enum=("x", "y")),
        "c": Prop("boolean", optional=True),
    }
    with pytest.raises(ApiError) as exc:
        validate({"a": "0", "c": "True", "z": "1"}, schema)
    assert exc.value.status == 400
    assert exc.value.errors == {
        "a": "value must have a minimum value of 1",
        "b": "property is missing and it is not optional",
        "c": "type check ('boolean') failed - got 'True'",
        "z": "property is not defined in schema and the schema does not allow additional properties",
    }
    assert validate({"a": "5", "b": "x", "c": "1"}, schema) == {"a": 5, "b": "x", "c": 1}


def test_property_string_errors() -> None:
    with pytest.raises(FormatError) as exc:
        parse_property_string(formats.NET_FORMAT, "name=eth0,name=eth1")
    assert exc.value.text == "duplicate key in comma-separated list property: name\n"
    with pytest.raises(FormatError) as exc:
        parse_property_string(formats.NET_FORMAT, "eth0")
    assert exc.value.text == "value without key, but schema does not define a default key\n"
    with pytest.raises(FormatError) as exc:
        parse_property_string(formats.ROOTFS_FORMAT, "a:1,b:2")
    assert exc.value.text == "duplicate key in comma-separated list property: volume\n"
    assert parse_property_string(formats.ROOTFS_FORMAT, "local-lvm:8,ro=yes") == {
        "volume": "local-lvm:8",
        "ro": 1,
    }


def test_print_property_string_order() -> None:
    net = {
        "type": "veth",
        "ip": "dhcp",
        "name": "eth0",
        "bridge": "vmbr0",
        "hwaddr": "BC:24:11:00:00:01",
    }
    assert (
        print_property_string(net, formats.NET_FORMAT)
        == "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:00:00:01,ip=dhcp,type=veth"
    )
    mp = {"size": "8G", "volume": "local-lvm:vm-1-disk-0", "mp": "/srv"}
    assert print_property_string(mp, formats.MP_FORMAT) == "local-lvm:vm-1-disk-0,mp=/srv,size=8G"


@given(st.integers(min_value=1, max_value=1 << 44))
def test_size_roundtrip(size: int) -> None:
    text = format_size(size)
    assert parse_size(text) == size


@given(
    st.fixed_dictionaries(
        {"name": st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True)},
        optional={
            "bridge": st.from_regex(r"vmbr[0-9]{1,2}", fullmatch=True),
            "tag": st.integers(min_value=1, max_value=4094).map(str),
            "firewall": st.sampled_from(["0", "1"]),
            "ip": st.sampled_from(["dhcp", "manual", "10.1.2.3/24"]),
            "mtu": st.integers(min_value=64, max_value=65535).map(str),
        },
    )
)
def test_net_roundtrip(net: dict[str, str]) -> None:
    text = print_property_string(net, formats.NET_FORMAT)
    parsed = parse_property_string(formats.NET_FORMAT, text)
    assert {k: str(v) for k, v in parsed.items()} == net
    assert print_property_string(parsed, formats.NET_FORMAT) == text


def test_config_text_and_digest() -> None:
    conf = {"hostname": "a", "memory": 512, "description": "hi: there\nsecond"}
    text = guestconf.config_text(conf, {"snap1": {"memory": 256, "snaptime": 1}})
    assert (
        text
        == "#hi%3A there\n#second\nhostname: a\nmemory: 512\n\n[snap1]\nmemory: 256\nsnaptime: 1\n"
    )
    assert guestconf.digest(conf, {}) != guestconf.digest({**conf, "memory": 513}, {})
    assert guestconf.typed_config(conf)["description"] == "hi: there\nsecond\n"


def test_tags_normalised() -> None:
    assert guestconf.normalize_tags("b;A;a,c b") == "A;b;c"
