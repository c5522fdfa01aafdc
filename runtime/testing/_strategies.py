"""Hypothesis strategies generating valid instances of any registered message class.

Derived from the same resolved field types the codec uses (:mod:`rtrun._message`), so a new field
type is covered by the round-trip property tests as soon as the codec supports it. Only imported
by tests: hypothesis is imported lazily, inside the functions.

Generated values stay small (short tuples, small arrays) to keep property tests fast; floats
include NaN and infinities, arrays use every whitelisted dtype unless the field pins one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._message import (
    ARRAY_DTYPES,
    ArrayType,
    DictType,
    FieldType,
    FixedTupleType,
    Message,
    NestedType,
    OptionalType,
    Scalar,
    TupleType,
)

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

__all__ = ["field_strategy", "message_strategy"]

MAX_ITEMS = 4
"""Most items generated for a tuple or dict field."""
MAX_ARRAY_SIDE = 4
"""Longest generated array dimension."""
MAX_ARRAY_DIMS = 3
"""Most generated array dimensions (0-d arrays included)."""


def message_strategy(cls: type[Message], **fields: SearchStrategy[Any]) -> SearchStrategy[Message]:
    """A strategy producing valid instances of the registered message class ``cls``.

    ``fields`` overrides the strategy of individual fields by name, e.g.
    ``message_strategy(EpisodeControl, command=st.sampled_from(["start", "save"]))``.

    Every field is generated, including those with defaults, so defaults do not hide bugs.
    Draws rejected by the class's ``__post_init__`` (ValueError/TypeError) are filtered out; a
    class with tight semantic constraints deserves a hand-written strategy.
    """
    from hypothesis import strategies as st

    unknown = set(fields) - {plan.name for plan in cls.__rtrun_fields__}
    if unknown:
        raise TypeError(f"{cls.__qualname__} has no field(s) {sorted(unknown)}")
    strategies = {
        p.name: fields[p.name] if p.name in fields else field_strategy(p.type) for p in cls.__rtrun_fields__
    }
    return st.fixed_dictionaries(strategies).map(lambda kwargs: _build(cls, kwargs)).filter(_built)


_REJECTED = object()


def _build(cls: type[Message], kwargs: dict[str, Any]) -> Any:
    """Instantiate, treating a ``__post_init__`` rejection as "draw again"."""
    try:
        return cls(**kwargs)
    except (TypeError, ValueError):
        return _REJECTED


def _built(value: object) -> bool:
    return value is not _REJECTED


def field_strategy(ftype: FieldType) -> SearchStrategy[Any]:
    """A strategy producing valid values of one resolved field type."""
    from hypothesis import strategies as st

    if isinstance(ftype, Scalar):
        return _scalar_strategy(ftype.py_type)
    if isinstance(ftype, ArrayType):
        return _array_strategy(ftype)
    if isinstance(ftype, OptionalType):
        return st.none() | field_strategy(ftype.inner)
    if isinstance(ftype, TupleType):
        return st.lists(field_strategy(ftype.item), max_size=MAX_ITEMS).map(tuple)
    if isinstance(ftype, FixedTupleType):
        return st.tuples(*(field_strategy(t) for t in ftype.items))
    if isinstance(ftype, DictType):
        return st.dictionaries(st.text(max_size=8), field_strategy(ftype.value), max_size=MAX_ITEMS)
    if isinstance(ftype, NestedType):
        return message_strategy(ftype.cls)
    raise TypeError(f"no strategy for field type {ftype!r}")


def _scalar_strategy(py_type: type) -> SearchStrategy[Any]:
    from hypothesis import strategies as st

    strategies: dict[type, SearchStrategy[Any]] = {
        bool: st.booleans(),
        int: st.integers(min_value=-(2**63), max_value=2**64 - 1),
        float: st.floats(allow_nan=True, allow_infinity=True),
        str: st.text(max_size=16),
        bytes: st.binary(max_size=16),
    }
    return strategies[py_type]


def _array_strategy(ftype: ArrayType) -> SearchStrategy[Any]:
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp

    dtypes = st.just(ftype.dtype) if ftype.dtype is not None else st.sampled_from(list(ARRAY_DTYPES.values()))
    shapes = hnp.array_shapes(min_dims=0, max_dims=MAX_ARRAY_DIMS, min_side=0, max_side=MAX_ARRAY_SIDE)
    return hnp.arrays(dtypes, shapes).map(_read_only)


def _read_only(array: Any) -> Any:
    array.flags.writeable = False
    return array
