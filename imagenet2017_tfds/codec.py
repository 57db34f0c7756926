"""One JSON codec for the package's records (Entry, Item, Annotation, Box, Problem): a
dataclass is written as the list of its field values, in field order, and read back by the
field types it declares. Used by the catalog cache and the Beam range files alike.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing


def encode(value):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [encode(getattr(value, f.name)) for f in dataclasses.fields(value)]
    if isinstance(value, (frozenset, set)):
        return sorted(encode(v) for v in value)
    if isinstance(value, (tuple, list)):
        return [encode(v) for v in value]
    return value


@functools.cache
def _field_types(cls) -> tuple:
    hints = typing.get_type_hints(cls)
    return tuple(hints[f.name] for f in dataclasses.fields(cls))


def decode(kind, value):
    """`value` as `kind`: a dataclass, `X | None`, tuple[X, ...], frozenset[X], list[X], or a
    plain JSON type."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return decode(inner, value)
    if dataclasses.is_dataclass(kind):
        return kind(*(decode(t, v) for t, v in zip(_field_types(kind), value, strict=True)))
    if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
        return tuple(decode(a, v) for a, v in zip(args, value, strict=True))
    if origin in (tuple, list, frozenset, set):
        return origin(decode(args[0], v) for v in value)
    return value
