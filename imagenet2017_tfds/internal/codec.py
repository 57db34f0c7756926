"""One JSON codec for the package's records (Entry, Item, Annotation, Box, Problem): a
dataclass is written as the list of its field values, in field order, and read back by the
field types it declares. Used by the catalog cache and the Beam range files alike.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable
from typing import Any


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


def _identity(value):
    return value


@functools.cache
def decoder(kind) -> Callable[[Any], Any]:
    """A function reading values of `kind` (a dataclass, `X | None`, tuple[X, ...],
    tuple[X, Y], frozenset[X], list[X], or a plain JSON type), built once per type: a cached
    catalog holds millions of records."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [decoder(a) for a in args if a is not type(None)]
        return lambda v: None if v is None else inner(v)
    if dataclasses.is_dataclass(kind):
        fields = [decoder(t) for t in _field_types(kind)]
        if all(f is _identity for f in fields):
            return lambda v: kind(*v)
        return lambda v: kind(*[f(x) for f, x in zip(fields, v, strict=True)])
    if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
        parts = [decoder(a) for a in args]
        return lambda v: tuple(f(x) for f, x in zip(parts, v, strict=True))
    if origin in (tuple, list, frozenset, set):
        inner = decoder(args[0])
        return origin if inner is _identity else (lambda v: origin(map(inner, v)))
    return _identity


def decode(kind, value):
    return decoder(kind)(value)
