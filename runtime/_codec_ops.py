"""Compiled codec operations: per field type (``_Ops``) and per message class (``_ClassCodec``).

Each :class:`~rtrun._message.FieldType` tree compiles once into closures that validate and emit
wire segments (encode) or convert wire values (decode); a class's compiled codec is cached on the
class as ``__rtrun_codec__``. Field types and class codecs are mutually recursive (a nested
message field compiles its class), hence they share this module. Wire layout and theory of
operation: :mod:`rtrun._codec`.

Decode builds a message through one precomputed plan per class (``build_plan``: name, the scalar
type accepted as is, the conversion, required): a scalar already of its field's type costs one
``type() is`` test; anything else goes through the field's compiled ``conv``, which converts or
raises. Encode has a one-call fast path (``pack_flat``, generated per class: :mod:`rtrun._codec_gen`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ._codec_gen import compile_pack_flat
from ._codec_wire import (
    _ARRAY_PREFIX,
    _DATA_KEY,
    _DTYPE_NAME_BE,
    _DTYPE_NAME_LE,
    _INT_MAX,
    _INT_MIN,
    _NIL,
    ARRAY_LAYOUT,
    TAG_KEY,
    VERSION_KEY,
    _array_header,
    _Bad,
    _bin_header,
    _map_header,
    _packb,
    _wire_name,
)
from ._errors import EncodeError
from ._message import (
    ARRAY_DTYPES,
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
)

# -- per-type compiled operations ---------------------------------------------------------------
# Each FieldType compiles to a _Ops: `check` (encode; validate + normalize to plain msgpack-able
# Python, only for array-free types), `emit` (encode; append wire segments) and `conv` (decode;
# wire value -> Python value). All raise _Bad.

Emit = Callable[[Any, list[Any], Callable[[Any], bytes]], None]


class _Ops:
    __slots__ = ("check", "conv", "emit")

    def __init__(self, check: Callable[[Any], Any] | None, emit: Emit, conv: Callable[[Any], Any]):
        self.check = check
        # An array-free value is validated into plain Python and packed in one C call.
        self.emit = emit if check is None else _emit_checked(check)
        self.conv = conv


def _emit_checked(check: Callable[[Any], Any]) -> Emit:
    def emit(value: Any, out: list[Any], pack: Callable[[Any], bytes]) -> None:
        out.append(pack(check(value)))

    return emit


def _scalar_ops(py_type: type) -> _Ops:
    check, conv = _SCALARS[py_type]
    return _Ops(check, _emit_checked(check), conv)


def _only(types_: frozenset[type], values: Iterable[Any]) -> bool:
    """Whether every value's exact type is in ``types_`` (one C-speed pass)."""
    return {*map(type, values)} <= types_


def _ints_in_range(values: tuple[Any, ...]) -> bool:
    return not values or (min(values) >= _INT_MIN and max(values) <= _INT_MAX)


def _tuple_fast_paths(item: FieldType) -> tuple[Callable[[Any], bool], Callable[[Any], bool]]:
    """Whole-tuple tests letting already-valid tuples of scalars through unchanged.

    Returns (encode test, decode test); a False answer falls back to the per-item path, which
    converts (int -> float) or reports the failing index.
    """
    if not isinstance(item, Scalar):
        return (lambda v: False), (lambda w: False)
    exact = frozenset({item.py_type})
    if item.py_type is int:
        return (lambda v: _only(exact, v) and _ints_in_range(v)), (lambda w: _only(exact, w))
    return (lambda v: _only(exact, v)), (lambda w: _only(exact, w))


def _enc_bool(v: Any) -> bool:
    if type(v) is bool or isinstance(v, np.bool_):
        return bool(v)
    raise _Bad("field_type", f"expected bool, got {type(v).__name__}")


def _enc_int(v: Any) -> int:
    if type(v) is not int:
        if isinstance(v, bool) or not isinstance(v, int | np.integer):
            raise _Bad("field_type", f"expected int, got {type(v).__name__}")
        v = int(v)
    if not _INT_MIN <= v <= _INT_MAX:
        raise _Bad("field_type", f"int {v} is outside the int64/uint64 range")
    return v


def _enc_float(v: Any) -> float:
    if type(v) is float:
        return v
    if isinstance(v, bool | np.bool_) or not isinstance(v, int | float | np.integer | np.floating):
        raise _Bad("field_type", f"expected float, got {type(v).__name__}")
    try:
        return float(v)
    except OverflowError:
        raise _Bad("field_type", f"int {v} is too large for a float") from None


def _enc_str(v: Any) -> str:
    if isinstance(v, str):
        return v
    raise _Bad("field_type", f"expected str, got {type(v).__name__}")


def _enc_bytes(v: Any) -> bytes:
    if isinstance(v, bytes):
        return v
    raise _Bad("field_type", f"expected bytes, got {type(v).__name__}")


def _dec_exact(py_type: type, name: str) -> Callable[[Any], Any]:
    def conv(w: Any) -> Any:
        if type(w) is py_type:
            return w
        raise _Bad("field_type", f"expected {name}, got {_wire_name(w)}")

    return conv


def _dec_float(w: Any) -> float:
    if type(w) is float:
        return w
    if type(w) is int:
        return float(w)
    raise _Bad("field_type", f"expected float, got {_wire_name(w)}")


def _dec_bytes(w: Any) -> bytes:
    if type(w) is bytes:
        return w
    if type(w) is memoryview:
        return bytes(w)
    raise _Bad("field_type", f"expected bin, got {_wire_name(w)}")


_SCALARS: dict[type, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {
    bool: (_enc_bool, _dec_exact(bool, "bool")),
    int: (_enc_int, _dec_exact(int, "int")),
    float: (_enc_float, _dec_float),
    str: (_enc_str, _dec_exact(str, "str")),
    bytes: (_enc_bytes, _dec_bytes),
}


_DTYPES: dict[str, np.dtype[Any]] = dict(ARRAY_DTYPES)  # a plain dict: faster than the proxy
_INT_ONLY = frozenset({int})


def _array_ops(pinned: np.dtype[Any] | None) -> _Ops:
    if pinned is not None:  # the whitelist's own object, so that the decoder's `is` test hits
        pinned = _DTYPES[_DTYPE_NAME_LE[pinned.str]]

    def emit(v: Any, out: list[Any], pack: Callable[[Any], bytes]) -> None:
        if not isinstance(v, np.ndarray):
            raise _Bad("field_type", f"expected numpy.ndarray, got {type(v).__name__}")
        name = _DTYPE_NAME_LE.get(v.dtype.str)
        if name is None:
            name = _DTYPE_NAME_BE.get(v.dtype.str)
            if name is None:
                raise _Bad("field_type", f"array dtype {v.dtype} is not allowed; allowed: "
                           f"{', '.join(ARRAY_DTYPES)}")  # fmt: skip
            v = np.ascontiguousarray(v, dtype=ARRAY_DTYPES[name])  # big-endian: convert once
        elif not v.flags.c_contiguous:
            v = np.ascontiguousarray(v)
        if pinned is not None and v.dtype != pinned:
            raise _Bad("field_type", f"expected dtype {pinned.name}, got {v.dtype.name}")
        if v.ndim > MAX_ARRAY_NDIM:
            raise _Bad("field_type", f"array has {v.ndim} dimensions (max {MAX_ARRAY_NDIM})")
        out.append(_ARRAY_PREFIX[name])
        out.append(pack(v.shape))
        out.append(_DATA_KEY + _bin_header(v.nbytes))
        out.append(memoryview(v))  # (not v.data: ndarray subclasses may override .data)

    return _Ops(None, emit, lambda w: _dec_array(w, pinned))


def _dec_array(w: Any, pinned: np.dtype[Any] | None) -> np.ndarray[Any, Any]:
    if type(w) is not dict or w.get("@nd") != ARRAY_LAYOUT:
        raise _Bad("field_type", f"expected an array map with '@nd': 1, got {_wire_name(w)}")
    name, shape, data = w.get("dtype"), w.get("shape"), w.get("data")
    dtype = _DTYPES.get(name) if type(name) is str else None
    if dtype is None:
        raise _Bad("field_type", f"array dtype {name!r} is not allowed")
    if pinned is not None and dtype is not pinned and dtype != pinned:
        raise _Bad("field_type", f"expected dtype {pinned.name}, got {name}")
    if type(shape) is not tuple or not (
        (len(shape) == 1 and type(shape[0]) is int and shape[0] >= 0)  # the common case, first
        or (len(shape) <= MAX_ARRAY_NDIM and _only(_INT_ONLY, shape) and (not shape or min(shape) >= 0))
    ):
        raise _Bad("field_type", f"array shape must be <= {MAX_ARRAY_NDIM} non-negative ints")
    if type(data) is not bytes and type(data) is not memoryview:
        raise _Bad("field_type", f"array data must be bin, got {_wire_name(data)}")
    if math.prod(shape) * dtype.itemsize != len(data):
        raise _Bad(
            "field_type",
            f"array data is {len(data)} bytes but shape {shape} of {name} needs "
            f"{math.prod(shape) * dtype.itemsize}",
        )
    # Read-only without a flags write: ``data`` is bytes or a read-only view of the input, and
    # frombuffer/reshape of a read-only buffer are read-only (the tests check every path).
    array = np.frombuffer(data, dtype)
    return array if len(shape) == 1 else array.reshape(shape)


def _optional_ops(inner: _Ops) -> _Ops:
    check = None
    if inner.check is not None:
        inner_check = inner.check

        def check(v: Any) -> Any:
            return None if v is None else inner_check(v)

    def emit(v: Any, out: list[Any], pack: Callable[[Any], bytes]) -> None:
        if v is None:
            out.append(_NIL)
        else:
            inner.emit(v, out, pack)

    inner_conv = inner.conv
    return _Ops(check, emit, lambda w: None if w is None else inner_conv(w))


def _at(bad: _Bad, part: str) -> _Bad:
    bad.where.append(part)
    return bad


def _require(v: Any, py_type: type, name: str) -> None:
    if type(v) is not py_type:
        raise _Bad("field_type", f"expected {name}, got {type(v).__name__}")


def _tuple_ops(item: _Ops, item_type: FieldType) -> _Ops:
    enc_fast, dec_fast = _tuple_fast_paths(item_type)
    check = None
    if item.check is not None:
        item_check = item.check

        def check(v: Any) -> Any:
            _require(v, tuple, "tuple")
            return v if enc_fast(v) else _map_indexed(item_check, v)

    def emit(v: Any, out: list[Any], pack: Callable[[Any], bytes]) -> None:
        _require(v, tuple, "tuple")
        out.append(_array_header(len(v)))
        for i, x in enumerate(v):
            try:
                item.emit(x, out, pack)
            except _Bad as bad:
                raise _at(bad, f"[{i}]") from None

    def conv(w: Any) -> Any:
        if type(w) is not tuple:
            raise _Bad("field_type", f"expected array, got {_wire_name(w)}")
        return w if dec_fast(w) else tuple(_map_indexed(item.conv, w))

    return _Ops(check, emit, conv)


def _map_indexed(fn: Callable[[Any], Any], values: tuple[Any, ...]) -> list[Any]:
    """``list(map(fn, values))``, adding the failing index to the error path."""
    try:
        return list(map(fn, values))
    except _Bad:
        for i, x in enumerate(values):
            try:
                fn(x)
            except _Bad as bad:
                raise _at(bad, f"[{i}]") from None
        raise


def _fixed_tuple_ops(items: tuple[_Ops, ...]) -> _Ops:
    n = len(items)

    def require(v: Any, wire: bool) -> None:
        if type(v) is not tuple or len(v) != n:
            got = _wire_name(v) if wire else type(v).__name__
            if type(v) is tuple:
                got = f"{got} of length {len(v)}"
            raise _Bad("field_type", f"expected a {n}-tuple, got {got}")

    def each(fns: list[Callable[[Any], Any]], v: tuple[Any, ...]) -> list[Any]:
        out = []
        for i, (fn, x) in enumerate(zip(fns, v, strict=True)):
            try:
                out.append(fn(x))
            except _Bad as bad:
                raise _at(bad, f"[{i}]") from None
        return out

    check = None
    if all(o.check is not None for o in items):
        checks = [o.check for o in items]

        def check(v: Any) -> Any:
            require(v, wire=False)
            return each(checks, v)  # type: ignore[arg-type]

    def emit(v: Any, out: list[Any], pack: Callable[[Any], bytes]) -> None:
        require(v, wire=False)
        out.append(_array_header(n))
        each([lambda x, o=o: o.emit(x, out, pack) for o in items], v)

    def conv(w: Any) -> Any:
        require(w, wire=True)
        return tuple(each([o.conv for o in items], w))

    return _Ops(check, emit, conv)


def _dict_ops(value: _Ops) -> _Ops:
    def items(v: Any, wire: bool) -> Any:
        if type(v) is not dict:
            got = _wire_name(v) if wire else type(v).__name__
            raise _Bad("field_type", f"expected {'map' if wire else 'dict'}, got {got}")
        for k in v:
            if type(k) is not str:
                raise _Bad("field_type", f"dict keys must be str, got {type(k).__name__}")
        return v.items()

    def each(fn: Callable[[Any], Any], v: Any, wire: bool) -> dict[str, Any]:
        out = {}
        for k, x in items(v, wire):
            try:
                out[k] = fn(x)
            except _Bad as bad:
                raise _at(bad, f"[{k!r}]") from None
        return out

    check = None
    if value.check is not None:
        value_check = value.check

        def check(v: Any) -> Any:
            return each(value_check, v, wire=False)

    def emit(v: Any, out: list[Any], pack: Callable[[Any], bytes]) -> None:
        pairs = list(items(v, wire=False))
        out.append(_map_header(len(pairs)))
        for k, x in pairs:
            out.append(pack(k))
            try:
                value.emit(x, out, pack)
            except _Bad as bad:
                raise _at(bad, f"[{k!r}]") from None

    return _Ops(check, emit, lambda w: each(value.conv, w, wire=True))


def _nested_ops(cls: type[Message]) -> _Ops:
    codec = _codec_of(cls)
    check = codec.to_dict if not codec.has_array else None
    return _Ops(check, codec.emit_nested, codec.from_nested)


def _compile(ftype: FieldType) -> _Ops:
    """Compile one FieldType tree into its encode/decode operations."""
    if isinstance(ftype, Scalar):
        return _scalar_ops(ftype.py_type)
    if isinstance(ftype, ArrayType):
        return _array_ops(ftype.dtype)
    if isinstance(ftype, OptionalType):
        return _optional_ops(_compile(ftype.inner))
    if isinstance(ftype, TupleType):
        return _tuple_ops(_compile(ftype.item), ftype.item)
    if isinstance(ftype, FixedTupleType):
        return _fixed_tuple_ops(tuple(_compile(t) for t in ftype.items))
    if isinstance(ftype, DictType):
        return _dict_ops(_compile(ftype.value))
    if isinstance(ftype, NestedType):
        return _nested_ops(ftype.cls)
    raise AssertionError(f"unhandled field type {ftype!r}")  # pragma: no cover


# -- per-class codec ----------------------------------------------------------------------------


class _Field:
    __slots__ = ("has_array", "key", "name", "ops", "required")

    def __init__(self, name: str, ops: _Ops, has_array: bool, required: bool) -> None:
        self.name = name
        self.key = _packb(name)
        self.ops = ops
        self.has_array = has_array
        self.required = required


class _ClassCodec:
    """Compiled encode/decode operations of one message class (cached on the class)."""

    def __init__(self, cls: type[Message]) -> None:
        self.cls = cls
        self.tag = cls.__rtrun_tag__
        self.version = cls.__rtrun_version__
        self.fields = tuple(
            _Field(p.name, _compile(p.type), p.type.has_array, p.required) for p in cls.__rtrun_fields__
        )
        self.table = {f.name: f for f in self.fields}
        self.has_array = any(f.has_array for f in self.fields)
        self.prefix = (
            _map_header(len(self.fields) + 2)
            + _packb(TAG_KEY)
            + _packb(self.tag)
            + _packb(VERSION_KEY)
            + _packb(self.version)
        )
        self.head = {TAG_KEY: self.tag, VERSION_KEY: self.version}
        plans = cls.__rtrun_fields__
        self.pack_flat = compile_pack_flat(cls, plans, [f.ops.check for f in self.fields])
        """The one-call encode (:mod:`rtrun._codec_gen`), or None for the segment path only."""
        self.build_plan = tuple(
            (f.name, p.type.py_type if isinstance(p.type, Scalar) else _Never, f.ops.conv, f.required)
            for p, f in zip(plans, self.fields, strict=True)
        )

    # encode
    def _require_instance(self, msg: Any) -> None:
        if type(msg) is not self.cls:
            raise _Bad("field_type", f"expected {self.tag} message, got {type(msg).__name__}")

    def emit_nested(self, msg: Any, out: list[Any], pack: Callable[[Any], bytes]) -> None:
        self._require_instance(msg)
        out.append(self.prefix)
        self.emit_fields(msg, out, pack)

    def emit_fields(self, msg: Any, out: list[Any], pack: Callable[[Any], bytes]) -> None:
        for field in self.fields:
            out.append(field.key)
            try:
                field.ops.emit(getattr(msg, field.name), out, pack)
            except _Bad as bad:
                raise _at(bad, f".{field.name}") from None

    def to_dict(self, msg: Any) -> dict[str, Any]:
        self._require_instance(msg)
        out: dict[str, Any] = {TAG_KEY: self.tag, VERSION_KEY: self.version}
        for field in self.fields:
            try:
                out[field.name] = field.ops.check(getattr(msg, field.name))  # type: ignore[misc]
            except _Bad as bad:
                raise _at(bad, f".{field.name}") from None
        return out

    # decode
    def from_nested(self, w: Any) -> Message:
        if type(w) is not dict:
            raise _Bad("field_type", f"expected a {self.tag} message map, got {_wire_name(w)}")
        if w.get(TAG_KEY) != self.tag:
            raise _Bad("field_type", f"expected nested {self.tag!r}, got {w.get(TAG_KEY)!r}")
        if w.get(VERSION_KEY) != self.version:
            raise _Bad(
                "schema_version",
                f"nested {self.tag!r} has version {w.get(VERSION_KEY)!r}, registered is {self.version}",
            )
        return self.build(w)

    def build(self, entries: dict[str, Any]) -> Message:
        kwargs = {}
        for name, exact, conv, required in self.build_plan:
            w = entries.get(name, _MISSING)
            if type(w) is not exact:  # exact: a scalar field's own type, accepted as is
                if w is _MISSING:
                    if required:
                        raise _at(_Bad("missing_field", "required field is missing"), f".{name}")
                    continue  # the dataclass default applies
                try:
                    w = conv(w)
                except _Bad as bad:
                    raise _at(bad, f".{name}") from None
            kwargs[name] = w
        try:
            return self.cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise _Bad("field_value", f"{self.cls.__qualname__} rejected the values: {exc}") from exc


_MISSING: Any = object()


class _Never:
    """A type no wire value has: the build plan's "no as-is type" marker."""


def _codec_of(cls: type) -> _ClassCodec:
    codec = cls.__dict__.get("__rtrun_codec__")
    if codec is None:
        if "__rtrun_fields__" not in cls.__dict__:
            raise EncodeError(
                f"{cls.__qualname__} is not a registered message class (decorate it with @rtrun.message)"
            )
        codec = _ClassCodec(cls)
        cls.__rtrun_codec__ = codec  # type: ignore[attr-defined]
    return codec  # type: ignore[no-any-return]
