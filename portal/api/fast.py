"""Output serializers for long lists: DRF's representation, without its per-field walk.

DRF reads every field of every object through `Field.get_attribute`, a general walk
(dotted sources, mappings, callables, missing attributes), then converts the value with
the field's `to_representation`; for a date-time that looks the current time zone up in
a context-local each time. At 1,000 containers a page (with their samples: 40 fields an
object) that walk cost more than reading the rows.

Here a field whose source is one plain attribute is read with one `getattr`, and a value
whose conversion is known to give it back unchanged (an `int` for an IntegerField, a
`str` for a CharField, a `float` for a FloatField) is taken as it is (all such fields of
an object are read in one `attrgetter` call, and taken together when every value has its
type or is None); an aware date-time
for a DateTimeField in ISO 8601 is converted as DRF does it, with the time zone looked up
once per serializer; a SlugRelatedField reads its slug off the related object, and a
SerializerMethodField calls its method, as DRF's do. Anything else (a relation of another
kind, a nested serializer, a dotted source, an attribute that raises or is callable, any
other value) takes DRF's own path, so the output is DRF's to the byte
(tests/unit/test_api_fast.py compares them).
"""

from __future__ import annotations

import datetime
import operator
from collections.abc import Callable
from functools import cached_property
from typing import Any, NamedTuple

from django.conf import settings
from django.utils import timezone
from rest_framework import ISO_8601, serializers
from rest_framework import fields as drf_fields
from rest_framework.fields import (
    CharField,
    ChoiceField,
    DateTimeField,
    Field,
    FloatField,
    IntegerField,
    IPAddressField,
    SerializerMethodField,
    SkipField,
)
from rest_framework.relations import (
    ManyRelatedField,
    PKOnlyObject,
    RelatedField,
    SlugRelatedField,
)
from rest_framework.settings import api_settings

# DRF has it since 3.15; its type stubs do not yet.
BigIntegerField: type[Field] = drf_fields.BigIntegerField  # type: ignore[attr-defined]

_MISSING = object()
# The fields whose `to_representation` is `type(value)`: a value of exactly that type
# comes out unchanged.
_IDENTITY: dict[type[Field], type] = {IntegerField: int, CharField: str, FloatField: float}


# How a field of a plan is read and converted (plain ints: an enum member's lookup, 40
# fields times 1,000 objects a page, cost as much as the rest of the loop).
DRF = 0  # DRF's walk and the field's to_representation
PLAIN = 1  # getattr(source); `extra` the type kept as it is (or None)
DATETIME = 2  # getattr(source), an ISO 8601 date-time in the request's time zone
SLUG = 3  # getattr(source), then its `extra` attribute (SlugRelatedField)
METHOD = 4  # the serializer's method `extra` of the object (SerializerMethodField)

# (name, kind, the attribute to read, extra, the field)
Plan = list[tuple[str, int, str, Any, Field]]


def _step(serializer: serializers.Serializer, field: Field) -> tuple[int, str, Any]:
    source = field.source
    kind = type(field)
    if kind is SerializerMethodField and isinstance(field, SerializerMethodField):
        return METHOD, "", getattr(serializer, str(field.method_name))
    if not isinstance(source, str) or source == "*" or "." in source:
        return DRF, "", None
    if (
        kind is SlugRelatedField
        and isinstance(field, SlugRelatedField)
        and "__" not in field.slug_field
    ):
        return SLUG, source, field.slug_field
    if kind is DateTimeField and not hasattr(field, "timezone"):
        output = getattr(field, "format", api_settings.DATETIME_FORMAT)
        if isinstance(output, str) and output.lower() == ISO_8601:
            return DATETIME, source, None
    if isinstance(field, (RelatedField, ManyRelatedField, serializers.BaseSerializer)):
        return DRF, "", None
    return PLAIN, source, _kept_type(field)


def _kept_type(field: Field) -> type | None:
    """The type of value that `field.to_representation` gives back as it is (or equal), if
    there is one."""
    kind = type(field)
    if kind is BigIntegerField:
        coerce = getattr(field, "coerce_to_string", api_settings.COERCE_BIGINT_TO_STRING)
        return None if coerce else int
    if kind is IPAddressField:
        return str  # CharField's: str(value)
    if kind is ChoiceField and isinstance(field, ChoiceField):
        # A str among string choices comes back as its choice (equal); any other as it is.
        keys = field.choice_strings_to_values.values()
        return str if all(type(key) is str for key in keys) else None
    return _IDENTITY.get(kind)


def _iso(value: Any, tz: datetime.tzinfo | None, slow: Callable[[Any], Any]) -> Any:
    """DateTimeField.to_representation of an aware date-time, time zone `tz`."""
    if tz is None or type(value) is not datetime.datetime or value.utcoffset() is None:
        return slow(value)
    try:
        text = value.astimezone(tz).isoformat()
    except OverflowError:
        return slow(value)
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _getter(sources: list[str]) -> Callable[[Any], tuple[Any, ...]]:
    """`operator.attrgetter` (in C) that gives a tuple whatever the number of sources."""
    if not sources:
        return lambda instance: ()
    if len(sources) == 1:
        one = operator.attrgetter(sources[0])
        return lambda instance: (one(instance),)
    return operator.attrgetter(*sources)


class _Batch(NamedTuple):
    """The fields read in one call apiece per object: the plain ones of a known type (taken
    as they are when every value has its type or is None), the date-times and the slugs
    (`site.slug`: the relation and its slug at once)."""

    plain: tuple[str, ...]
    read_plain: Callable[[Any], tuple[Any, ...]]
    kept: tuple[frozenset[type], ...]  # per plain field: the types taken as they are
    dates: tuple[tuple[str, Callable[[Any], Any]], ...]  # (name, the field's own conversion)
    read_dates: Callable[[Any], tuple[Any, ...]]
    slugs: tuple[str, ...]
    read_slugs: Callable[[Any], tuple[Any, ...]]
    rest: Plan  # the plan without them


def _batch(plan: Plan) -> _Batch:
    plain = [
        (name, source, extra) for name, kind, source, extra, _ in plan if kind == PLAIN and extra
    ]
    dates = [(name, source, field) for name, kind, source, _, field in plan if kind == DATETIME]
    slugs = [(name, f"{source}.{extra}") for name, kind, source, extra, _ in plan if kind == SLUG]
    batched = {name for name, *_ in plain + dates + slugs}
    return _Batch(
        plain=tuple(name for name, _, _ in plain),
        read_plain=_getter([source for _, source, _ in plain]),
        kept=tuple(frozenset((extra, type(None))) for _, _, extra in plain),
        dates=tuple((name, field.to_representation) for name, _, field in dates),
        read_dates=_getter([source for _, source, _ in dates]),
        slugs=tuple(name for name, _ in slugs),
        read_slugs=_getter([source for _, source in slugs]),
        rest=[entry for entry in plan if entry[0] not in batched],
    )


class FastRepresentation(serializers.Serializer):
    """A serializer whose `to_representation` reads plain attributes directly."""

    @cached_property
    def _plan(self) -> Plan:
        return [
            (str(field.field_name), *_step(self, field), field) for field in self._readable_fields
        ]

    @cached_property
    def _names(self) -> tuple[str, ...]:
        return tuple(name for name, *_ in self._plan)

    @cached_property
    def _batch(self) -> _Batch:
        return _batch(self._plan)

    def _batched(self, instance: Any, out: dict[str, Any]) -> Plan:
        """Fills in the batched fields; gives what is left of the plan (all of it when a
        value is not of its type or a read raises: each field then as below, as DRF)."""
        batch = self._batch
        try:
            plain = batch.read_plain(instance)
            dates = batch.read_dates(instance)
            slugs = batch.read_slugs(instance)  # a relation that is None raises here
        except Exception:
            return self._plan
        if not all(map(frozenset.__contains__, batch.kept, map(type, plain))):
            return self._plan
        out.update(zip(batch.plain, plain, strict=True))
        out.update(zip(batch.slugs, slugs, strict=True))
        tz = self._tz
        for (name, slow), value in zip(batch.dates, dates, strict=True):
            out[name] = None if value is None else _iso(value, tz, slow)
        return batch.rest

    @cached_property
    def _tz(self) -> datetime.tzinfo | None:
        # What DateTimeField.default_timezone() answers, once per serializer (a request).
        return timezone.get_current_timezone() if settings.USE_TZ else None

    def to_representation(self, instance: Any) -> dict[str, Any]:
        out: dict[str, Any] = dict.fromkeys(self._names)  # the fields' order, as DRF's
        plan = self._batched(instance, out)
        for name, kind, source, extra, field in plan:
            if kind == METHOD:
                out[name] = extra(instance)  # DRF: the method of the object itself
                continue
            value: Any = _MISSING
            if kind != DRF:
                try:
                    value = getattr(instance, source)
                except Exception:  # DRF's walk answers for it below
                    value = _MISSING
                else:
                    if callable(value):
                        value = _MISSING
            if value is _MISSING:
                try:
                    value = field.get_attribute(instance)
                except SkipField:
                    del out[name]
                    continue
                if isinstance(value, PKOnlyObject):
                    out[name] = None if value.pk is None else field.to_representation(value)
                    continue
                kind = DRF
            if value is None:
                out[name] = None
            elif kind == PLAIN:
                out[name] = value if type(value) is extra else field.to_representation(value)
            elif kind == DATETIME:
                out[name] = _iso(value, self._tz, field.to_representation)
            elif kind == SLUG:
                out[name] = getattr(value, extra)
            else:
                out[name] = field.to_representation(value)
        return out
