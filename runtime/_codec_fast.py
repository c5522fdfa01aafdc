"""Compiled decode fast path: msgspec validates a body against a *mirror* of the message class.

Theory of operation
-------------------
The wire format (see :mod:`rtrun._codec`) is unchanged; this module only reads it faster. For
each message class it builds, once, a ``msgspec.Struct`` that mirrors the body's map: ``@tag``
and ``@version`` as literals, every field with its declared type (scalars as themselves, arrays
as a small ``{"@nd", "dtype", "shape", "data"}`` struct whose ``data`` is a zero-copy
``memoryview`` of the input, nested messages as their own mirrors, optional fields defaulting to
``UNSET``), unknown keys forbidden. msgspec's C decoder then parses *and* type-checks the body
in one call; a short Python step, generated per class (:mod:`rtrun._codec_gen`), turns arrays
into read-only numpy views and nested mirrors into messages, and builds the message as its
``__init__`` would (``__post_init__`` runs as on every decode).

Equivalence: the fast path only ever *accepts*. Anything it does not accept exactly as the
general decoder would -- a msgspec error, unknown keys, repeated top-level keys (msgspec keeps
the last), a container over :data:`~rtrun._codec_read.MAX_CONTAINER_LEN`, a disallowed dtype or
inconsistent array, a ``__post_init__`` rejection, a class whose types have no mirror -- returns
``None`` and the general decoder runs, producing the result or the precise ``DecodeError``
(reason and field path). The fuzz tests compare both paths on valid and mutated bodies.

Measured (a 4-field message with a small uint8 array, the Zenoh benchmark's): 7.5 us on the
general path, 2.9 us here; with a cold cache -- what a sparse Zenoh sample meets -- about 20 us
instead of 65-75 us (18-22 us through :func:`rtrun._codec.decoder_for`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Final, Literal

import msgspec
import numpy as np

from ._codec_gen import BuildField, Reject, compile_build
from ._codec_ops import _DTYPES, _ClassCodec, _codec_of
from ._codec_read import MAX_CONTAINER_LEN, _peek_tag
from ._codec_wire import _DTYPE_NAME_LE, _MAP_HEAD, ARRAY_LAYOUT
from ._message import (
    MAX_ARRAY_NDIM,
    ArrayType,
    DictType,
    FieldType,
    FixedTupleType,
    Message,
    NestedType,
    OptionalType,
    Scalar,
    TupleType,
    _registry,
)

__all__ = ["fast_decode"]

Conv = Callable[[Any], Any] | None  # mirror value -> field value; None: use as is
_UNSET: Final = msgspec.UNSET
_TAG_FIELD, _VERSION_FIELD = "rtrun__tag", "rtrun__version"


class _NdCopy(msgspec.Struct, forbid_unknown_fields=True, rename={"nd": "@nd"}, gc=False):
    """An array map of a small body: ``data`` is copied out (as the general path does)."""

    nd: Literal[1]  # the array layout version (ARRAY_LAYOUT)
    dtype: str
    shape: tuple[int, ...]
    data: bytes


class _NdView(msgspec.Struct, forbid_unknown_fields=True, rename={"nd": "@nd"}, gc=False):
    """An array map of a large body: ``data`` is a zero-copy view of the input."""

    nd: Literal[1]
    dtype: str
    shape: tuple[int, ...]
    data: memoryview


assert ARRAY_LAYOUT == 1  # the mirrors' nd literal


def _array_conv(pinned: np.dtype[Any] | None) -> Callable[[Any], np.ndarray[Any, Any]]:
    if pinned is not None:  # the whitelist's own object, so that an identity test suffices
        pinned = _DTYPES[_DTYPE_NAME_LE[pinned.str]]

    def conv(m: _NdCopy | _NdView) -> np.ndarray[Any, Any]:
        dtype = _DTYPES.get(m.dtype)
        if dtype is None or (pinned is not None and dtype is not pinned):
            raise Reject
        shape = m.shape
        if len(shape) == 1:  # the common case first
            if shape[0] < 0 or shape[0] * dtype.itemsize != len(m.data):
                raise Reject
            return np.frombuffer(m.data, dtype)  # read-only: bytes, or a read-only view
        if len(shape) > MAX_ARRAY_NDIM or (shape and min(shape) < 0):
            raise Reject
        if math.prod(shape) * dtype.itemsize != len(m.data):
            raise Reject
        return np.frombuffer(m.data, dtype).reshape(shape)

    return conv


def _bounded(n: int) -> None:
    if n > MAX_CONTAINER_LEN:
        raise Reject


def _tuple_conv(item: Conv) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    def conv(v: tuple[Any, ...]) -> tuple[Any, ...]:
        _bounded(len(v))
        return v if item is None else tuple([item(x) for x in v])

    return conv


def _fixed_conv(items: tuple[Conv, ...]) -> Conv:
    if all(c is None for c in items):
        return None
    return lambda v: tuple([x if c is None else c(x) for c, x in zip(items, v, strict=True)])


def _dict_conv(value: Conv) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def conv(v: dict[str, Any]) -> dict[str, Any]:
        _bounded(len(v))
        return v if value is None else {k: value(x) for k, x in v.items()}

    return conv


def _optional_conv(inner: Conv) -> Conv:
    if inner is None:
        return None
    return lambda v: None if v is None else inner(v)


def _mirror(ftype: FieldType, zero_copy: bool) -> tuple[Any, Conv]:
    """The msgspec type reading ``ftype`` and the conversion of its value (None: as is)."""
    if isinstance(ftype, Scalar):
        return ftype.py_type, None
    if isinstance(ftype, ArrayType):
        return (_NdView if zero_copy else _NdCopy), _array_conv(ftype.dtype)
    if isinstance(ftype, OptionalType):
        inner, conv = _mirror(ftype.inner, zero_copy)
        return inner | None, _optional_conv(conv)
    if isinstance(ftype, TupleType):
        item, conv = _mirror(ftype.item, zero_copy)
        return tuple[item, ...], _tuple_conv(conv)  # type: ignore[valid-type]
    if isinstance(ftype, FixedTupleType):
        mirrored = [_mirror(t, zero_copy) for t in ftype.items]
        return tuple[tuple(m for m, _ in mirrored)], _fixed_conv(tuple(c for _, c in mirrored))  # type: ignore[misc]
    if isinstance(ftype, DictType):
        value, conv = _mirror(ftype.value, zero_copy)
        return dict[str, value], _dict_conv(conv)  # type: ignore[valid-type]
    if isinstance(ftype, NestedType):
        plans = _plans(ftype.cls)
        if plans is None:
            raise TypeError(f"no mirror for nested {ftype.cls.__qualname__}")
        plan = plans[zero_copy]
        return plan.struct, plan.build
    raise TypeError(f"no mirror for {ftype!r}")  # pragma: no cover - every FieldType is handled


class _Plan:
    """A class's mirror struct, its msgspec decoder and the generated step building the message."""

    __slots__ = ("build", "decoder", "struct", "tag")

    def __init__(self, codec: _ClassCodec, zero_copy: bool) -> None:
        cls = codec.cls
        spec: list[tuple[Any, ...]] = [
            (_TAG_FIELD, Literal[codec.tag]),  # type: ignore[valid-type]
            (_VERSION_FIELD, Literal[codec.version]),  # type: ignore[valid-type]
        ]
        fields: list[BuildField] = []
        for plan in cls.__rtrun_fields__:
            if plan.name in (_TAG_FIELD, _VERSION_FIELD):
                raise TypeError("field name collides with the mirror's own")
            mirror_type, conv = _mirror(plan.type, zero_copy)
            if plan.required:
                spec.append((plan.name, mirror_type))
            else:  # absent on the wire -> the dataclass default applies
                spec.append((plan.name, mirror_type | msgspec.UnsetType, _UNSET))
            array = isinstance(plan.type, ArrayType)
            pinned = (
                _DTYPES[_DTYPE_NAME_LE[plan.type.dtype.str]]
                if array and plan.type.dtype is not None
                else None
            )
            fields.append(
                BuildField(name=plan.name, required=plan.required, array=array, pinned=pinned, conv=conv)
            )
        self.tag = codec.tag
        self.struct = msgspec.defstruct(
            f"Mirror_{cls.__name__}{'_view' if zero_copy else ''}",
            spec,
            rename={_TAG_FIELD: "@tag", _VERSION_FIELD: "@version"},
            forbid_unknown_fields=True,
            gc=False,
        )
        self.decoder = msgspec.msgpack.Decoder(self.struct)
        self.build: Callable[..., Message] = compile_build(cls, fields)
        """``build(mirror, count=-1)``: the message (raises Reject; see :mod:`rtrun._codec_gen`)."""


_NO_PLAN: Final = object()


def _plans(cls: type[Message]) -> tuple[_Plan, _Plan] | None:
    """The class's plans (index False: small bodies copy arrays; True: large ones view them),
    built on first use and cached on the class; None when a field type has no mirror."""
    plans = cls.__dict__.get("__rtrun_fast__", _NO_PLAN)
    if plans is _NO_PLAN:
        try:
            codec = _codec_of(cls)
            plans = (_Plan(codec, False), _Plan(codec, True))
        except (TypeError, ValueError):  # a type msgspec cannot mirror: general path only
            plans = None
        cls.__rtrun_fast__ = plans  # type: ignore[attr-defined]
    return plans  # type: ignore[return-value]


def _map_len(view: bytes | memoryview) -> int | None:
    """Entry count of the top-level msgpack map, or None if the body does not start with one."""
    head = view[0] if view else None
    if head is None or head not in _MAP_HEAD:
        return None
    if head < 0x90:  # fixmap
        return head & 0x0F
    size = 3 if head == 0xDE else 5
    return int.from_bytes(view[1:size], "big") if len(view) >= size else None


def fast_decode(view: bytes | memoryview, expected: type[Message] | None, zero_copy: bool) -> Message | None:
    """Decode ``view`` on the fast path, or return ``None`` to leave it to the general decoder.

    ``zero_copy``: arrays view the input (large bodies) instead of copying it (small ones).

    With ``expected`` the tag is checked by the mirror's literal (no peeking); the class must
    still be the one registered under its tag, as the general decoder requires.
    """
    if expected is not None:
        count = _map_len(view)
        plans = expected.__dict__.get("__rtrun_fast__", _NO_PLAN)
        if plans is _NO_PLAN:
            plans = _plans(expected) if "__rtrun_fields__" in expected.__dict__ else None
        if count is None or plans is None:
            return None
        plan = plans[zero_copy]
        if _registry.get(plan.tag) is not expected:
            return None
    else:
        peeked = _peek_tag(view) if view and view[0] in _MAP_HEAD else None
        if peeked is None:
            return None
        codec, count = peeked
        plans = _plans(codec.cls)
        if plans is None:
            return None
        plan = plans[zero_copy]
    try:  # count: a repeated top-level key (msgspec keeps the last) is malformed
        return plan.build(plan.decoder.decode(view), count)
    except (ValueError, Reject):  # msgspec's errors are ValueErrors, and so is bad UTF-8
        return None
