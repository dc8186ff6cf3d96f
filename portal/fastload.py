"""Loading many rows of a model without Django's per-field `__init__`.

`Model.__init__` sets each field through its descriptor (a foreign key's compares and
clears a cache) and sends `pre_init` and `post_init`: a fifth of a page of 1,000
containers with their samples (under cProfile 22 µs a row, against 8 here;
docs/performance.md). A row read whole from the database needs none of that: its values
go straight into the instance's `__dict__`, as `__init__` would have left them.

A row with deferred fields gets its loaded ones, the others loading when read, as with
`__init__`. A model with a field whose descriptor does more than store the value, and any
model someone listens to `pre_init` or `post_init` for, take Django's own path
(tests/unit/test_fastload.py)."""

from __future__ import annotations

from typing import Any, Self

from django.db.models import Model, signals
from django.db.models.base import ModelState
from django.db.models.fields.related_descriptors import ForeignKeyDeferredAttribute
from django.db.models.query_utils import DeferredAttribute

# The descriptors whose `__set__` on a new instance comes down to storing the value.
_PLAIN_DESCRIPTORS = (DeferredAttribute, ForeignKeyDeferredAttribute)


def _attnames(model: type[Model]) -> tuple[str, ...] | None:
    """The concrete fields' attribute names in `from_db`'s order, or None when one of them
    is not stored plainly."""
    names = []
    for field in model._meta.concrete_fields:
        if type(model.__dict__.get(field.attname)) not in _PLAIN_DESCRIPTORS:
            return None
        names.append(field.attname)
    return tuple(names)


class FastLoad:
    """A model mixin (first among the bases): rows read whole skip `__init__`."""

    _fastload_attnames: tuple[str, ...] | None

    @classmethod
    def from_db(cls, db: str | None, field_names: Any, values: Any) -> Self:
        attnames = cls.__dict__.get("_fastload_attnames", False)
        if attnames is False:  # worked out once per model, when its fields are all known
            attnames = _attnames(cls)  # type: ignore[arg-type]
            cls._fastload_attnames = attnames
        listened = (signals.pre_init.receivers or signals.post_init.receivers) and (
            signals.pre_init.has_listeners(cls) or signals.post_init.has_listeners(cls)
        )  # has_listeners alone cost 4 µs a row
        if attnames is None or listened:
            return super().from_db(db, field_names, values)  # type: ignore[misc]
        if len(values) != len(attnames):
            # Some deferred: `field_names` are the loaded ones' attnames, as `values` come.
            # A deferred field stays out of `__dict__` and loads when read, as with __init__.
            attnames = field_names
        new = cls.__new__(cls)
        new.__dict__.update(zip(attnames, values, strict=True))
        state = new._state = ModelState()  # type: ignore[attr-defined]
        state.adding = False
        state.db = db
        return new
