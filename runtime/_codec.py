"""The message codec: :class:`~rtrun.Message` ⇄ msgpack bytes (sans-io, no pickle).

Wire layout (version 1)
-----------------------
A body is exactly one msgpack map; any msgpack library can read it. String keys, in this order
when rtrun writes them (a decoder must accept any order)::

    "@tag"     str   the message tag, e.g. "rtrun.Frame"
    "@version" int   the schema version the sender was built with
    <field>    ...   one entry per dataclass field, named as in Python, in declaration order

Field values by declared type:

==========================  ===================================================================
``bool``                    msgpack bool (never an int)
``int``                     msgpack int, within int64 ∪ uint64 (never a bool)
``float``                   msgpack float64 (decoders also accept an int)
``str`` / ``bytes``         msgpack str (UTF-8) / msgpack bin
``X | None``                nil, or the encoding of X
``tuple[X, ...]``           msgpack array
``tuple[X, Y]``             msgpack array of exactly that length
``dict[str, X]``            msgpack map with str keys
nested message              msgpack map with the same layout ("@tag", "@version", fields)
``numpy.ndarray``           msgpack map ``{"@nd": 1, "dtype": str, "shape": [int, ...],
                            "data": bin}``: "@nd" is the array layout version (1), "dtype" one
                            of bool, uint8/16/32/64, int8/16/32/64, float16/32/64,
                            complex64/128; "data" holds the elements in C order, little-endian,
                            exactly prod(shape) × itemsize bytes
==========================  ===================================================================

No msgpack ext types are written; nothing on the wire names code. Keys starting with ``@`` are
reserved for the layout.

Decoding rules (each failure is a :class:`~rtrun.DecodeError` whose ``reason`` is a stable
counter key; the text names the tag and the field path, e.g. ``poses[2].image``):

- ``oversize``: more than ``max_size`` bytes (checked before parsing);
- ``malformed``: not exactly one msgpack map, truncated, trailing bytes, invalid UTF-8 (also
  inside unknown keys), a container over :data:`MAX_CONTAINER_LEN` items, nesting beyond
  msgpack's stack limit, repeated top-level keys, map keys that are not str (bin keys are left
  to the field check), missing or mistyped ``@tag``/``@version``;
- ``unknown_tag``: no class registered under the tag;
- ``wrong_type``: the tag is not the ``expected`` class's;
- ``schema_version``: the version differs from the registered class's (also for nested messages);
- ``missing_field``: a field without default is absent (absent fields with a default get it);
- ``field_type``: a value does not match the declared type (bool is not int and vice versa;
  int is accepted for float), or an array map is inconsistent (dtype not allowed, data length
  ≠ prod(shape) × itemsize, ...);
- ``field_value``: the class's ``__post_init__`` rejected the values (ValueError/TypeError).

Unknown keys are ignored (additive evolution); duplicate keys inside nested maps follow msgpack
(the last one wins).

Theory of operation
-------------------
*Encode* validates each field against the class's resolved :class:`~rtrun._message.FieldType`
tree (compiled once per class into closures, cached on the class) and emits a list of segments:
msgpack bytes from a per-thread reusable ``msgpack.Packer`` for ordinary values, and for arrays a
hand-written map/bin header followed by the array's own ``memoryview``. One ``b"".join`` then
copies each array exactly once into the output. A C-contiguous little-endian array is never
copied before that; a non-contiguous or big-endian one is converted once
(``np.ascontiguousarray(..., dtype=little-endian)``). Going through ``Packer.pack(memoryview)``
instead would copy the payload twice (into the packer's buffer, then out of it).

*Decode* has two paths with identical results (the fuzz tests compare them on every input):

- Bodies smaller than :data:`ZERO_COPY_MIN_SIZE` whose first key is ``@tag`` (rtrun's own
  layout), and bodies of messages without array fields, are unpacked by one ``msgpack.unpackb``
  call; array payloads are then ``bytes`` objects (one small copy), wrapped read-only.
- Otherwise a streaming ``msgpack.Unpacker`` reads the input through a small file-like window
  (:data:`READ_CHUNK` bytes at a time) and the top-level map is walked in Python: array-free
  fields are unpacked in C in one call each, fields that can hold arrays are walked node by node,
  and a bin node is never handed to the unpacker: the walker returns a slice of the caller's
  *read-only* ``memoryview`` and moves the window past the payload. ``np.frombuffer`` over that
  slice gives arrays that are zero-copy with respect to the input, and read-only. A 640×480×3
  frame thus decodes without touching its 921,600 pixel bytes.

Consequences of zero-copy: decoded arrays keep the input buffer alive, and mutating a
``bytearray`` input after decoding would change them (``bytes`` inputs, the normal case, are
immutable). Arrays of itemsize > 1 may be unaligned (``arr.flags.aligned``); numpy handles that
transparently (call ``np.ascontiguousarray``/``copy()`` if an extension needs alignment). If
``@tag`` is not the first key (a third-party encoder), values before it are walked generically.

msgpack options: ``raw=False`` (str is UTF-8 text), ``strict_map_key=True``, ``use_list=False``
(arrays decode to tuples, which is what tuple fields hold), every ``max_*_len`` bounded by the
input length and container lengths by :data:`MAX_CONTAINER_LEN`. Only msgpack's own exceptions
(``OutOfData``, ``BufferFull`` and the ``ValueError`` family) are translated, chained with ``from``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any, TypeVar, overload

import msgpack
import numpy as np

from ._errors import DecodeError, EncodeError
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
    _registry_get,
)

__all__ = [
    "DEFAULT_MAX_SIZE",
    "MAX_CONTAINER_LEN",
    "MAX_DEPTH",
    "ZERO_COPY_MIN_SIZE",
    "decode",
    "encode",
]

M = TypeVar("M", bound=Message)

DEFAULT_MAX_SIZE = 64 * 1024 * 1024
"""Largest body :func:`decode` accepts by default (64 MiB): a 4K RGB frame is ~25 MB, a 1080p
stereo pair ~12 MB; anything bigger is far more likely a bug or an attack than a message."""

MAX_CONTAINER_LEN = 1 << 20
"""Most items in one msgpack array or map (1 Mi). Bulk data belongs in ndarray fields; the bound
stops a 5-byte array32 header from making the decoder allocate billions of slots."""

MAX_DEPTH = 32
"""Deepest container nesting the array-aware walker follows in Python; deeper values (never
produced by a real layout, which is a few levels deep: message → tuple → nested message → array
map) are unpacked by msgpack in C, whose own stack limit applies."""

ZERO_COPY_MIN_SIZE = 64 * 1024
"""Bodies at least this large are decoded zero-copy (arrays are views of the input). Smaller
ones are unpacked in one C call, copying their bins: measured here, walking a 50×14 float32
chunk (3 KB) in Python costs ~20 µs more than ``unpackb`` while copying 64 KiB costs ~2 µs, and
allocations this small come from the heap (no mmap page faults). Arrays are read-only either
way."""

TAG_KEY = "@tag"
"""Reserved map key holding the message tag."""
VERSION_KEY = "@version"
"""Reserved map key holding the schema version."""
ARRAY_LAYOUT = 1
"""Value of the ``"@nd"`` key of an array map (the array layout version)."""

_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1

# -- tiny msgpack writer helpers (for the hand-spliced array segments) -----------------------


def _packb(obj: Any) -> bytes:
    """Pack a constant (class compile time only; the hot path uses the per-thread Packer)."""
    return msgpack.packb(obj, use_bin_type=True)  # type: ignore[no-any-return]


_MAP_HEAD = frozenset(range(0x80, 0x90)) | {0xDE, 0xDF}
_ARRAY_HEAD = frozenset(range(0x90, 0xA0)) | {0xDC, 0xDD}
_BIN_HEADER_LEN = {0xC4: 2, 0xC5: 3, 0xC6: 5}
_NIL = b"\xc0"

_DTYPE_NAME_LE = {dt.str: name for name, dt in ARRAY_DTYPES.items()}
_DTYPE_NAME_BE = {dt.newbyteorder(">").str: name for name, dt in ARRAY_DTYPES.items()}
_ARRAY_PREFIX = {  # map header + "@nd": 1 + "dtype": name + "shape" key
    name: b"\x84" + _packb("@nd") + _packb(ARRAY_LAYOUT) + _packb("dtype") + _packb(name) + _packb("shape")
    for name in ARRAY_DTYPES
}
_DATA_KEY = _packb("data")


def _bin_header(size: int) -> bytes:
    if size < 0x100:
        return b"\xc4" + size.to_bytes(1, "big")
    if size < 0x10000:
        return b"\xc5" + size.to_bytes(2, "big")
    if size < 0x100000000:
        return b"\xc6" + size.to_bytes(4, "big")
    raise _Bad("field_type", f"array of {size} bytes exceeds msgpack's 4 GiB bin limit")


def _map_header(n: int) -> bytes:
    if n < 16:
        return bytes((0x80 | n,))
    return (b"\xde" + n.to_bytes(2, "big")) if n < 0x10000 else (b"\xdf" + n.to_bytes(4, "big"))


def _array_header(n: int) -> bytes:
    if n < 16:
        return bytes((0x90 | n,))
    return (b"\xdc" + n.to_bytes(2, "big")) if n < 0x10000 else (b"\xdd" + n.to_bytes(4, "big"))


_local = threading.local()


def _packer() -> msgpack.Packer:
    """This thread's reusable Packer (a Packer is not safe to share across threads)."""
    try:
        return _local.packer  # type: ignore[no-any-return]
    except AttributeError:
        _local.packer = msgpack.Packer(use_bin_type=True, autoreset=True)
        return _local.packer  # type: ignore[no-any-return]


# -- errors with a field path -----------------------------------------------------------------


class _Bad(Exception):
    """Internal: a value broke a rule. ``where`` collects path parts innermost first."""

    def __init__(self, reason: str, rule: str) -> None:
        super().__init__(rule)
        self.reason = reason
        self.rule = rule
        self.where: list[str] = []

    def located(self) -> str:
        """`` field <path>`` (e.g. `` field poses[2].image``), or nothing at the top level."""
        path = "".join(reversed(self.where)).lstrip(".")
        return f" field {path}" if path else ""


_WIRE_NAMES = {
    type(None): "nil",
    bool: "bool",
    int: "int",
    float: "float",
    str: "str",
    bytes: "bin",
    memoryview: "bin",
    tuple: "array",
    dict: "map",
}


def _wire_name(value: object) -> str:
    return _WIRE_NAMES.get(type(value), type(value).__name__)


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


def _only(types_: frozenset[type], values: tuple[Any, ...]) -> bool:
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


def _array_ops(pinned: np.dtype[Any] | None) -> _Ops:
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
    dtype = ARRAY_DTYPES.get(name) if type(name) is str else None
    if dtype is None:
        raise _Bad("field_type", f"array dtype {name!r} is not allowed")
    if pinned is not None and dtype != pinned:
        raise _Bad("field_type", f"expected dtype {pinned.name}, got {name}")
    if (
        type(shape) is not tuple
        or len(shape) > MAX_ARRAY_NDIM
        or not all(type(d) is int and d >= 0 for d in shape)
    ):
        raise _Bad("field_type", f"array shape must be <= {MAX_ARRAY_NDIM} non-negative ints")
    if type(data) is not memoryview and type(data) is not bytes:
        raise _Bad("field_type", f"array data must be bin, got {_wire_name(data)}")
    if math.prod(shape) * dtype.itemsize != len(data):
        raise _Bad(
            "field_type",
            f"array data is {len(data)} bytes but shape {shape} of {name} needs "
            f"{math.prod(shape) * dtype.itemsize}",
        )
    array = np.frombuffer(data, dtype=dtype).reshape(shape)
    array.flags.writeable = False  # already read-only (bytes / read-only view); made explicit
    return array


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
        for field in self.fields:
            try:
                w = entries[field.name]
            except KeyError:
                if field.required:
                    raise _at(_Bad("missing_field", "required field is missing"), f".{field.name}") from None
                continue  # the dataclass default applies
            try:
                kwargs[field.name] = field.ops.conv(w)
            except _Bad as bad:
                raise _at(bad, f".{field.name}") from None
        try:
            return self.cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise _Bad("field_value", f"{self.cls.__qualname__} rejected the values: {exc}") from exc


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


# -- public API -----------------------------------------------------------------------------------


def encode(msg: Message) -> bytes:
    """Encode a message to its msgpack body (layout in this module's docstring).

    Validates every field against its declared type; raises :class:`~rtrun.EncodeError` naming
    the tag and the field path when a value does not fit.
    """
    codec = _codec_of(type(msg))
    out: list[Any] = [codec.prefix]
    try:
        codec.emit_fields(msg, out, _packer().pack)
    except _Bad as bad:
        raise EncodeError(f"cannot encode {codec.tag}{bad.located()}: {bad.rule}") from None
    return b"".join(out)


@overload
def decode(data: bytes | bytearray | memoryview, *, expected: type[M], max_size: int = ...) -> M: ...
@overload
def decode(
    data: bytes | bytearray | memoryview, *, expected: None = None, max_size: int = ...
) -> Message: ...
def decode(
    data: bytes | bytearray | memoryview,
    *,
    expected: type[Message] | None = None,
    max_size: int = DEFAULT_MAX_SIZE,
) -> Message:
    """Decode a msgpack body into the registered message class named by its tag.

    ``expected`` additionally requires that class. Array fields are read-only; in bodies of at
    least :data:`ZERO_COPY_MIN_SIZE` bytes they are zero-copy views of ``data``. Raises :class:`~rtrun.DecodeError` (``reason`` as listed in this module's
    docstring) for anything malformed; never executes anything from the input.
    """
    view = memoryview(data)
    if view.ndim != 1 or view.format != "B":
        view = view.cast("B")
    if view.nbytes > max_size:
        raise DecodeError("oversize", f"{view.nbytes} bytes exceeds max_size={max_size}")
    view = view.toreadonly()
    try:
        codec, version, entries = _read_body(view)
    except (msgpack.OutOfData, msgpack.BufferFull) as exc:  # BufferFull: needs more than n bytes
        raise DecodeError("malformed", "truncated input") from exc
    except ValueError as exc:  # msgpack's FormatError/StackError/ExtraData, limits, bad UTF-8
        raise DecodeError("malformed", f"invalid msgpack: {exc}") from exc
    if expected is not None and codec.cls is not expected:
        wanted = getattr(expected, "__rtrun_tag__", expected.__qualname__)
        raise DecodeError("wrong_type", f"expected {wanted!r}, got {codec.tag!r}")
    if version != codec.version:
        raise DecodeError(
            "schema_version",
            f"{codec.tag!r} has version {version} on the wire, registered is {codec.version}",
        )
    try:
        return codec.build(entries)
    except _Bad as bad:
        raise DecodeError(bad.reason, f"{codec.tag}{bad.located()}: {bad.rule}") from bad.__cause__


# -- decode: the top-level walk -------------------------------------------------------------------

READ_CHUNK = 512
"""Bytes the streaming unpacker pulls from the input at a time. Small, so that at most this much
of an array's payload is ever copied into the unpacker's buffer before the walker bypasses it."""


class _Source:
    """File-like view of the input for ``msgpack.Unpacker``; ``seek_past`` skips payloads."""

    __slots__ = ("fed", "view")

    def __init__(self, view: memoryview) -> None:
        self.view = view
        self.fed = 0

    def read(self, size: int) -> bytes:
        start = self.fed
        self.fed = min(len(self.view), start + size)
        return self.view[start : self.fed].tobytes()  # msgpack wants bytes; <= READ_CHUNK


class _Reader:
    """A streaming Unpacker over a :class:`_Source`, plus zero-copy handling of bin payloads:
    :meth:`bin_slice` returns a payload as a view of the input and makes the unpacker skip it
    without ever reading it. ``removed`` counts the bytes bypassed that way, hence the absolute
    position is ``tell() + removed``. (No reference cycle: the unpacker only knows the source.)
    """

    __slots__ = ("n", "removed", "source", "unpacker", "view")

    def __init__(self, view: memoryview) -> None:
        self.view = view
        self.n = n = len(view)
        self.removed = 0
        self.source = _Source(view)
        containers = min(n, MAX_CONTAINER_LEN)
        self.unpacker = msgpack.Unpacker(
            self.source,
            read_size=min(n, READ_CHUNK),
            raw=False,
            use_list=False,
            strict_map_key=True,
            max_buffer_size=n,
            max_str_len=n,
            max_bin_len=n,
            max_ext_len=n,
            max_array_len=containers,
            max_map_len=containers,
        )

    def pos(self) -> int:
        """Absolute offset of the next unread byte."""
        return self.unpacker.tell() + self.removed  # type: ignore[no-any-return]

    def head(self) -> int:
        """The type byte of the next value."""
        pos = self.pos()
        if pos >= self.n:
            raise msgpack.OutOfData
        return self.view[pos]

    def bin_slice(self, header_len: int) -> memoryview:
        """Consume the bin value at the current position; return its payload as a view."""
        pos = self.pos()
        start = pos + header_len
        if start > self.n:
            raise msgpack.OutOfData
        end = start + int.from_bytes(self.view[pos + 1 : start], "big")
        if end > self.n:
            raise msgpack.OutOfData
        fed = self.source.fed
        if fed >= end:  # already buffered entirely (a small bin): consume it
            self.unpacker.read_bytes(end - pos)
        else:  # drop the buffered part, bypass the rest
            if fed > pos:
                self.unpacker.read_bytes(fed - pos)
            self.removed += end - fed
            self.source.fed = end
        return self.view[start:end]


def _read_body(view: memoryview) -> tuple[_ClassCodec, int, dict[str, Any]]:
    """Walk the top-level map: returns the class codec, the wire version and the raw entries."""
    if not view or view[0] not in _MAP_HEAD:
        raise DecodeError("malformed", "a message body must be one msgpack map")
    peeked = _peek_tag(view)
    if peeked is not None and (not peeked[0].has_array or len(view) < ZERO_COPY_MIN_SIZE):
        return _read_flat(view, *peeked)
    reader = _Reader(view)
    unpacker = reader.unpacker
    count = _container_len(unpacker.read_map_header())
    codec: _ClassCodec | None = None
    entries: dict[str, Any] = {}
    for _ in range(count):
        key = unpacker.unpack()
        if type(key) is not str or key in entries:
            raise DecodeError("malformed", f"top-level key {key!r} is not a str or is repeated")
        field = codec.table.get(key) if codec is not None else None
        if key == TAG_KEY:
            codec = _codec_for_tag(unpacker.unpack())
            entries[key] = codec.tag
        elif codec is None or (field is not None and field.has_array):
            entries[key] = _walk(reader, 1)  # array-aware (or the tag is not known yet)
        elif field is not None or key == VERSION_KEY:
            entries[key] = unpacker.unpack()
        else:  # unknown key: tolerated (additive evolution), but validated like _read_flat does
            unpacker.unpack()
            entries[key] = None
    if reader.pos() != reader.n:
        raise DecodeError("malformed", f"{reader.n - reader.pos()} trailing bytes after the body")
    if codec is None:
        raise DecodeError("malformed", f"the body has no {TAG_KEY!r} key")
    return codec, _version(entries), entries


def _version(entries: dict[str, Any]) -> int:
    version = entries.get(VERSION_KEY)
    if type(version) is not int:
        raise DecodeError("malformed", f"{VERSION_KEY!r} must be an int, got {version!r}")
    return version


def _walk(reader: _Reader, depth: int) -> Any:
    """Unpack one value, returning bin payloads as slices of the input (zero-copy)."""
    head = reader.head()
    header_len = _BIN_HEADER_LEN.get(head)
    if header_len is not None:
        return reader.bin_slice(header_len)
    if head not in _MAP_HEAD and head not in _ARRAY_HEAD:
        return reader.unpacker.unpack()
    if depth > MAX_DEPTH:  # no legitimate layout gets here; let msgpack's C stack bound it
        return reader.unpacker.unpack()
    if head in _ARRAY_HEAD:
        count = _container_len(reader.unpacker.read_array_header())
        return tuple([_walk(reader, depth + 1) for _ in range(count)])
    count = _container_len(reader.unpacker.read_map_header())
    out = {}
    for _ in range(count):
        key = reader.unpacker.unpack()
        if type(key) is not str and type(key) is not bytes:  # as strict_map_key
            raise DecodeError("malformed", f"map key {key!r} is not a str")
        out[key] = _walk(reader, depth + 1)
    return out


def _container_len(n: int) -> int:
    if n > MAX_CONTAINER_LEN:
        raise DecodeError("malformed", f"container of {n} items exceeds {MAX_CONTAINER_LEN}")
    return n


_TAG_KEY_PACKED = _packb(TAG_KEY)


def _peek_tag(view: memoryview) -> tuple[_ClassCodec, int] | None:
    """``(codec, map length)`` when the first key is ``@tag`` with a short str value (rtrun's own
    layout); ``None`` otherwise, leaving every error to the general walk."""
    head = view[0]
    pos, count = 1, head & 0x0F
    if head in (0xDE, 0xDF):
        pos = 3 if head == 0xDE else 5
        count = int.from_bytes(view[1:pos], "big")
    key_end = pos + len(_TAG_KEY_PACKED)
    if view[pos:key_end] != _TAG_KEY_PACKED or key_end + 1 >= len(view):
        return None
    head = view[key_end]
    if 0xA0 <= head <= 0xBF:
        start, size = key_end + 1, head & 0x1F
    elif head == 0xD9:
        start, size = key_end + 2, view[key_end + 1]
    else:
        return None
    if start + size > len(view):
        return None  # truncated: let the general walk report it
    try:
        tag = str(view[start : start + size], "utf-8")
    except UnicodeDecodeError:
        return None
    return _codec_for_tag(tag), count


def _read_flat(view: memoryview, codec: _ClassCodec, count: int) -> tuple[_ClassCodec, int, dict[str, Any]]:
    """Fast path for messages without array fields: one C-level unpack of the whole body."""
    n = len(view)
    containers = min(n, MAX_CONTAINER_LEN)
    body = msgpack.unpackb(
        view,
        raw=False,
        use_list=False,
        strict_map_key=True,
        max_str_len=n,
        max_bin_len=n,
        max_ext_len=n,
        max_array_len=containers,
        max_map_len=containers,
    )
    if len(body) != count or not _only(_STR, tuple(body)):
        raise DecodeError("malformed", "top-level keys must be distinct str")
    return codec, _version(body), body


_STR = frozenset({str})


def _codec_for_tag(tag: Any) -> _ClassCodec:
    if type(tag) is not str:
        raise DecodeError("malformed", f"{TAG_KEY!r} must be a str, got {_wire_name(tag)}")
    cls = _registry_get(tag)
    if cls is None:
        raise DecodeError("unknown_tag", f"no message type is registered under tag {tag!r}")
    return _codec_of(cls)
