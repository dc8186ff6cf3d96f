"""Parameter validation in the order and wording of pve-common JSONSchema.pm.

Declarations are written in pvesim itself (see :mod:`pvesim.apidefs`); this
module only knows how Proxmox checks them:

* every declared property is checked (missing, then type, format, pattern,
  maxLength, minLength, maximum, minimum, enum; first failure only),
* then every given property (undefined ones, ``requires``),
* all failures are collected and reported together as a 400.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Union

from pvesim.errors import param_error

# A value as it arrives: form/query strings, lists for repeated keys, or JSON.
Raw = Any


class FormatError(Exception):
    """A format check failed; ``text`` is what Perl's ``$@`` would hold."""

    def __init__(self, message: str, errors: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.errors = dict(errors or {})
        text = message if message.endswith("\n") else message + "\n"
        for key in sorted(self.errors):
            text += f"{key}: {self.errors[key]}\n"
        self.text = text


FormatSpec = Union[str, "Mapping[str, Prop]", None]


@dataclass(frozen=True)
class Prop:
    """One parameter (or one key of a property string)."""

    type: str = "string"
    optional: bool = False
    format: FormatSpec = None
    pattern: str | None = None
    max_length: int | None = None
    min_length: int | None = None
    maximum: float | None = None
    minimum: float | None = None
    enum: tuple[str, ...] | None = None
    default: Any = None
    default_key: bool = False
    alias: str | None = None
    requires: str | None = None
    description: str = field(default="", compare=False)

    def opt(self) -> Prop:
        return _replace(self, optional=True)


def _replace(prop: Prop, **changes: Any) -> Prop:
    from dataclasses import replace

    return replace(prop, **changes)


Schema = Mapping[str, Prop]

# Registered named formats: name -> validator raising FormatError.
NamedFormat = Callable[[str], object]
_FORMATS: dict[str, NamedFormat] = {}
_HASH_FORMATS: dict[str, Schema] = {}


def register_format(name: str, fn: NamedFormat) -> None:
    _FORMATS[name] = fn


def register_hash_format(name: str, schema: Schema) -> None:
    _HASH_FORMATS[name] = schema


def split_list(text: str) -> list[str]:
    """PVE::Tools::split_list: NUL separated, else on , ; and whitespace."""
    if "\0" in text:
        return text.split("\0")
    return [x for x in re.split(r"[,;\s]+", text.strip()) if x]


_NUMBER_RE = re.compile(r"^[+-]?(\d+\.\d+|\d+\.|\.\d+|\d+)([eE][+-]?\d+)?$")
_INTEGER_RE = re.compile(r"^[+-]?\d+$")


def is_number(value: str) -> bool:
    return bool(_NUMBER_RE.match(value))


def _perl_num(value: float) -> str:
    """Numbers in messages print like Perl: 16, not 16.0."""
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def add_error(errors: dict[str, str], path: str, msg: str) -> None:
    path = path or "_root"
    if path in errors:
        # Perl joins with a single-quoted '\n', i.e. a literal backslash-n.
        errors[path] = errors[path] + "\\n" + msg
    else:
        errors[path] = msg


class _JsonBool:
    """Marker for a JSON true/false (a blessed ref in Perl)."""

    def __init__(self, value: bool) -> None:
        self.value = value


def normalize_json(value: Any) -> Any:
    """Turn a JSON body value into what the Perl checks would see."""
    if isinstance(value, bool):
        return _JsonBool(value)
    if isinstance(value, int | float):
        return _perl_num(value) if isinstance(value, float) else str(value)
    if isinstance(value, list):
        return [normalize_json(v) for v in value]
    return value


def _ref_name(value: Any) -> str:
    if isinstance(value, list):
        return "ARRAY"
    if isinstance(value, dict):
        return "HASH"
    if isinstance(value, _JsonBool):
        return "JSON::PP::Boolean"
    return ""


def check_type(path: str, type_: str, value: Any, errors: dict[str, str]) -> bool:
    ref = _ref_name(value)
    if ref:
        if type_ == "boolean" and isinstance(value, _JsonBool):
            return True
        if type_ == "array" and ref == "ARRAY":
            return True
        add_error(errors, path, f"type check ('{type_}') failed - got {ref}")
        return False
    text = str(value)
    if type_ == "boolean":
        if text in ("1", "0"):
            return True
    elif type_ == "integer":
        if _INTEGER_RE.match(text):
            return True
    elif type_ == "number":
        if is_number(text):
            return True
    else:
        return True
    add_error(errors, path, f"type check ('{type_}') failed - got '{text}'")
    return False


def check_format(fmt: FormatSpec, value: str, path: str) -> object:
    """Run a format check; raises FormatError like Perl's ``die``."""
    if fmt is None:
        return value
    if not isinstance(fmt, str):
        return parse_property_string(fmt, value, path)
    if fmt in _HASH_FORMATS:
        return parse_property_string(_HASH_FORMATS[fmt], value, path)
    m = re.match(r"^(.*?)(?:-(list|opt))?$", fmt)
    assert m is not None
    name, kind = m.group(1), m.group(2)
    fn = _FORMATS.get(name) if kind else _FORMATS.get(fmt)
    if fn is None and kind is None:
        raise FormatError(f"undefined format '{fmt}'")
    if fn is None:
        fn = _FORMATS.get(fmt)
        kind = None
        if fn is None:
            raise FormatError(f"undefined format '{fmt}'")
    if kind == "list":
        return [fn(v) for v in split_list(value)]
    if kind == "opt":
        return fn(value) if value else None
    return fn(value)


def check_prop(value: Any, schema: Prop, path: str, errors: dict[str, str]) -> None:
    if value is None:
        if not schema.optional and not schema.alias:
            add_error(errors, path, "property is missing and it is not optional")
        return
    if not check_type(path, schema.type, value, errors):
        return
    if _ref_name(value):
        return
    text = str(value)
    if schema.format is not None:
        try:
            check_format(schema.format, text, path)
        except FormatError as exc:
            add_error(errors, path, "invalid format - " + exc.text)
            return
    if schema.pattern is not None and not re.fullmatch(f"(?:{schema.pattern})", text, re.S):
        add_error(errors, path, "value does not match the regex pattern")
        return
    if schema.max_length is not None and len(text) > schema.max_length:
        add_error(errors, path, f"value may only be {schema.max_length} characters long")
        return
    if schema.min_length is not None and len(text) < schema.min_length:
        add_error(errors, path, f"value must be at least {schema.min_length} characters long")
        return
    if is_number(text):
        if schema.maximum is not None and float(text) > schema.maximum:
            add_error(
                errors, path, f"value must have a maximum value of {_perl_num(schema.maximum)}"
            )
            return
        if schema.minimum is not None and float(text) < schema.minimum:
            add_error(
                errors, path, f"value must have a minimum value of {_perl_num(schema.minimum)}"
            )
            return
    if schema.enum is not None and text not in schema.enum:
        add_error(
            errors,
            path,
            f"value '{text}' does not have a value in the enumeration '{', '.join(schema.enum)}'",
        )


def check_object(
    path: str,
    schema: Schema,
    value: Mapping[str, Any],
    errors: dict[str, str],
    *,
    additional: bool = False,
) -> None:
    for key, prop in schema.items():
        check_prop(value.get(key), prop, f"{path}.{key}" if path else key, errors)
    for key in value:
        newpath = f"{path}.{key}" if path else key
        sub = schema.get(key)
        if sub is not None:
            if sub.requires and value.get(sub.requires) is None:
                req_path = f"{path}.{sub.requires}" if path else sub.requires
                add_error(
                    errors, req_path, f"missing property - '{newpath}' requires this property"
                )
            continue
        if not additional:
            add_error(
                errors,
                newpath,
                "property is not defined in schema and the schema does not allow additional properties",
            )


_TRUE = re.compile(r"^(1|on|yes|true)$", re.I)
_FALSE = re.compile(r"^(0|off|no|false)$", re.I)


def parse_boolean(text: str) -> int | None:
    if _TRUE.match(text):
        return 1
    if _FALSE.match(text):
        return 0
    return None


def parse_property_string(fmt: Schema, data: str, path: str = "") -> dict[str, Any]:
    """PVE::JSONSchema::parse_property_string, messages included."""
    res: dict[str, Any] = {}
    default_key: str | None = None
    for part in data.split(","):
        if not part.strip():
            continue
        m = re.match(r"^([^=]+)=(.+)$", part, re.S)
        if m:
            key, val = m.group(1), m.group(2)
            if key in res:
                raise FormatError(f"duplicate key in comma-separated list property: {key}")
            sub = fmt.get(key)
            if sub is not None and sub.alias:
                key = sub.alias
                sub = fmt.get(key)
            if sub is None:
                raise FormatError(f"invalid key in comma-separated list property: {key}")
            if sub.type == "boolean":
                parsed = parse_boolean(val)
                res[key] = parsed if parsed is not None else val
            else:
                res[key] = val
        elif "=" not in part:
            if default_key:
                raise FormatError(f"duplicate key in comma-separated list property: {default_key}")
            for key, sub in fmt.items():
                if sub.default_key:
                    default_key = key
                    if key not in res:
                        res[key] = part
                        break
                    raise FormatError(f"duplicate key in comma-separated list property: {key}")
            if not default_key:
                raise FormatError("value without key, but schema does not define a default key")
        else:
            raise FormatError("missing key in comma-separated list property")
    errors: dict[str, str] = {}
    check_object(path, fmt, res, errors)
    if errors:
        raise FormatError("format error", errors)
    return res


def print_property_string(data: Mapping[str, Any], fmt: Schema) -> str:
    """PVE::JSONSchema::print_property_string ordering: default key, required, optional."""
    parts: list[str] = []
    default_key = next((k for k, p in fmt.items() if p.default_key), None)
    if default_key and data.get(default_key) is not None:
        parts.append(str(data[default_key]))
    required = sorted(k for k, p in fmt.items() if not p.optional and k != default_key)
    optional = sorted(k for k, p in fmt.items() if p.optional and k != default_key)
    for key in required + optional:
        if key in data and data[key] is not None and not fmt[key].alias:
            parts.append(f"{key}={data[key]}")
    return ",".join(parts)


def validate(params: Mapping[str, Raw], schema: Schema) -> dict[str, Any]:
    """Check request parameters; return them typed (int/float) or raise 400."""
    errors: dict[str, str] = {}
    check_object("", schema, params, errors)
    if errors:
        raise param_error(errors)
    return coerce(params, schema)


def coerce(params: Mapping[str, Raw], schema: Schema) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        prop = schema.get(key)
        if isinstance(value, _JsonBool):
            out[key] = 1 if value.value else 0
        elif prop is None or isinstance(value, list | dict):
            out[key] = value
        elif prop.type in ("integer", "boolean"):
            out[key] = int(str(value))
        elif prop.type == "number":
            out[key] = float(str(value))
        else:
            out[key] = str(value)
    return out


def indexed(prefix: str, count: int, prop: Prop) -> dict[str, Prop]:
    """Expand ``net[n]`` into net0..net{count-1} (the schema collapses them)."""
    return {f"{prefix}{i}": prop for i in range(count)}
