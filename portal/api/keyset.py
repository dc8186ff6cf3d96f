"""Keyset (cursor) positions in an ordered queryset: what a cursor says, and the filter
that continues after it.

A list is walked in an order that ends with a unique key (ContainerViewSet: the site and
the VMID, unique among live containers by a partial unique index). A cursor is the
ordering and the last row's values of its fields; the next page is the rows after those
values in that order. Rows are found by comparison, never counted past (OFFSET), so:

- every page costs the same, the first or the thousandth;
- a walk sees every row that exists from its start to its end exactly once, whatever is
  created or deleted meanwhile (a row is after the cursor or not, by its own values); a
  row created behind the cursor is not seen, one created ahead of it is;
- a row whose ordering values change during the walk (`-cpu`: the metrics poll) may be
  seen twice or not at all: only an order by fields that do not change is exact.

Consecutive fields of one direction compare as one row value, `(a, b) > (x, y)`, which
PostgreSQL and SQLite (3.15+) answer from an index on (a, b) in its order (Django's own
tuple lookup is written out as ORs on SQLite, which no index serves); a change of
direction adds an OR: `a < x OR (a = x AND (b, c) > (y, z))`.

A cursor is a base64url JSON object, `{"o": ordering, "v": values}`. It is not signed: it
can only move the start of a walk through rows the caller may see anyway, and every value
is checked against its field before it reaches a query.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db.models import BooleanField, Expression, F, Field, Model, Q, QuerySet, Value

from portal.errors import ValidationFailed

CURSOR_PARAM = "cursor"
# A cursor holds a few short values; anything much longer was not made here.
CURSOR_MAX_LENGTH = 2000


class RowCompare(Expression):
    """`(a, b, ...) > (x, y, ...)` (or `<`), a row-value comparison, as a filter."""

    conditional = True

    def __init__(self, columns: Sequence[Any], values: Sequence[Any], *, greater: bool) -> None:
        super().__init__(output_field=BooleanField())
        self.columns, self.values, self.greater = list(columns), list(values), greater

    def __repr__(self) -> str:
        return f"RowCompare({self.columns!r} {'>' if self.greater else '<'} {self.values!r})"

    def get_source_expressions(self) -> list[Any]:
        return [*self.columns, *self.values]

    def set_source_expressions(self, exprs: Sequence[Any]) -> None:
        n = len(self.columns)
        self.columns, self.values = list(exprs[:n]), list(exprs[n:])

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        sides: list[list[str]] = [[], []]
        params: list[Any] = []
        for side, exprs in zip(sides, (self.columns, self.values), strict=True):
            for expr in exprs:
                sql, p = compiler.compile(expr)
                side.append(sql)
                params.extend(p)
        op = ">" if self.greater else "<"
        return f"({', '.join(sides[0])}) {op} ({', '.join(sides[1])})", params


@dataclass(frozen=True)
class Key:
    """One field of an ordering: its name (a column's attname or an annotation's)."""

    name: str
    descending: bool

    @classmethod
    def parse(cls, term: Any) -> Key:
        if not isinstance(term, str) or "__" in term or term.lstrip("-") in ("", "?"):
            raise ImproperlyConfigured(f"a cursor cannot follow the ordering term {term!r}")
        return cls(term.lstrip("-"), term.startswith("-"))

    def __str__(self) -> str:
        return f"-{self.name}" if self.descending else self.name


def keyed_ordering(queryset: QuerySet[Any], unique: Sequence[str]) -> list[Key]:
    """The queryset's ordering, completed by the unique key's fields it lacks (ascending),
    so that no two rows tie: an order a cursor can hold a place in."""
    keys = [Key.parse(term) for term in queryset.query.order_by]
    named = {k.name for k in keys}
    return keys + [Key(name, False) for name in unique if name not in named]


def _field(queryset: QuerySet[Any], name: str) -> Field[Any, Any]:
    annotation = queryset.query.annotations.get(name)
    if annotation is not None:
        return annotation.output_field
    model: type[Model] = queryset.model
    found = model._meta.get_field(name)
    if not isinstance(found, Field):
        raise ImproperlyConfigured(f"a cursor cannot follow {name!r}")
    return found


def _plain(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        return value
    raise ImproperlyConfigured(f"a cursor cannot hold {type(value).__name__} (null?)")


def encode(keys: Sequence[Key], row: Any) -> str:
    """The cursor just after `row` in the order `keys`."""
    payload = {"o": [str(k) for k in keys], "v": [_plain(getattr(row, k.name)) for k in keys]}
    raw = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a value")


def _invalid(message: str) -> ValidationFailed:
    return ValidationFailed(f"cursor: {message}; start again without one", field=CURSOR_PARAM)


def decode(raw: str, keys: Sequence[Key], queryset: QuerySet[Any]) -> list[Any]:
    """The position a cursor holds, each value checked by its field; anything else (not
    ours, or made for another ordering) is a 400."""
    if len(raw) > CURSOR_MAX_LENGTH:
        raise _invalid("too long")
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        payload = json.loads(text, parse_constant=_no_constants)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _invalid("not a cursor of this list") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("v"), list):
        raise _invalid("not a cursor of this list")
    if payload.get("o") != [str(k) for k in keys]:
        raise _invalid("it was made for another ordering")
    values = payload["v"]
    if len(values) != len(keys):
        raise _invalid("not a cursor of this list")
    return [_checked(queryset, key, value) for key, value in zip(keys, values, strict=True)]


def _checked(queryset: QuerySet[Any], key: Key, value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _invalid(f"{key.name} is not a value")
    field = _field(queryset, key.name)
    try:
        cleaned = field.to_python(value)
        field.run_validators(cleaned)
    except ValidationError:
        raise _invalid(f"{key.name} is not a value of its field") from None
    if cleaned is None or (isinstance(cleaned, float) and not math.isfinite(cleaned)):
        raise _invalid(f"{key.name} is not a value")
    return Value(cleaned, output_field=field)


def after(keys: Sequence[Key], values: Sequence[Any]) -> Q:
    """The rows after the position `values` in the order `keys`."""
    groups: list[list[int]] = []
    for i, key in enumerate(keys):
        if groups and keys[groups[-1][0]].descending == key.descending:
            groups[-1].append(i)
        else:
            groups.append([i])
    condition: Q | None = None
    for group in reversed(groups):
        beyond = Q(
            RowCompare(
                [F(keys[i].name) for i in group],
                [values[i] for i in group],
                greater=not keys[group[0]].descending,
            )
        )
        if condition is not None:
            equal = Q(**{keys[i].name: values[i].value for i in group})
            beyond |= equal & condition
        condition = beyond
    assert condition is not None
    return condition
