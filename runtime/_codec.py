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

Small flat messages (fields that are scalars, array-free containers/nested messages, or arrays of
at most :data:`~rtrun._codec_gen.PACK_ARRAY_MAX` bytes) first take a one-call path: the body is
built as one dict in wire order and packed by a single msgspec call, in a function generated per
class (:mod:`rtrun._codec_gen`; same bytes: a dict's pairs are written in insertion order). Its
checks only accept exact, already-valid values; anything else falls back to the segment path
above, which converts or raises the same errors as before. This more than halves the
per-message cost of a 6-joint state (see ``benchmarks/_codec_bench.py``).

*Decode* first tries the compiled path (:mod:`rtrun._codec_fast`, switch: :data:`FAST_DECODE`):
msgspec parses and type-checks the body against a mirror of the class in C, about twice as fast
as the paths below. It only ever *accepts*; whatever it does not accept exactly as they would
(any error, unknown or repeated keys, ...) goes to the general decoder, which has two paths
with identical results (the fuzz tests compare all of them on every input):

- Bodies smaller than :data:`ZERO_COPY_MIN_SIZE` whose first key is ``@tag`` (rtrun's own
  layout), and bodies of messages without array fields, are unpacked by one ``msgpack.unpackb``
  call; array payloads are then ``bytes`` objects (one small copy), wrapped read-only. The tag
  is peeked from the raw bytes (codecs are cached by the tag's UTF-8 bytes, checked against the
  registry on every hit), and ``bytes`` inputs are used as is, without a ``memoryview``.
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

Modules
-------
This module holds the public :func:`encode`/:func:`decode` and the size limits; the rest is
split by role: :mod:`rtrun._codec_wire` (reserved keys, msgpack header bytes, the internal
field-path error), :mod:`rtrun._codec_ops` (per-type and per-class compiled operations) and
:mod:`rtrun._codec_read` (the top-level decode walk, zero-copy reader). The public names and
the layout constants (``MAX_CONTAINER_LEN``, ``MAX_DEPTH``, ``READ_CHUNK``, ``TAG_KEY``,
``VERSION_KEY``, ``ARRAY_LAYOUT``) stay importable from here. :data:`ZERO_COPY_MIN_SIZE` is read
from this module on every :func:`decode` call (tests patch it to force either path); the
re-exported limits are defined where they are used, so they must be patched there.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, overload

import msgpack

from ._codec_fast import _plans as fast_plans
from ._codec_fast import fast_decode
from ._codec_gen import Reject
from ._codec_ops import _codec_of
from ._codec_read import MAX_CONTAINER_LEN as MAX_CONTAINER_LEN
from ._codec_read import MAX_DEPTH as MAX_DEPTH
from ._codec_read import READ_CHUNK as READ_CHUNK
from ._codec_read import _read_body
from ._codec_wire import ARRAY_LAYOUT as ARRAY_LAYOUT
from ._codec_wire import TAG_KEY as TAG_KEY
from ._codec_wire import VERSION_KEY as VERSION_KEY
from ._codec_wire import _Bad, _packer
from ._errors import DecodeError, EncodeError
from ._message import Message, _registry

__all__ = [
    "DEFAULT_MAX_SIZE",
    "MAX_CONTAINER_LEN",
    "MAX_DEPTH",
    "ZERO_COPY_MIN_SIZE",
    "decode",
    "decoder_for",
    "encode",
    "flat_encoder",
]

M = TypeVar("M", bound=Message)

DEFAULT_MAX_SIZE = 64 * 1024 * 1024
"""Largest body :func:`decode` accepts by default (64 MiB): a 4K RGB frame is ~25 MB, a 1080p
stereo pair ~12 MB; anything bigger is far more likely a bug or an attack than a message."""

ZERO_COPY_MIN_SIZE = 64 * 1024
"""Bodies at least this large are decoded zero-copy (arrays are views of the input). Smaller
ones are unpacked in one C call, copying their bins: measured here, walking a 50×14 float32
chunk (3 KB) in Python costs ~20 µs more than ``unpackb`` while copying 64 KiB costs ~2 µs, and
allocations this small come from the heap (no mmap page faults). Arrays are read-only either
way."""

# -- public API -----------------------------------------------------------------------------------


def encode(msg: Message) -> bytes:
    """Encode a message to its msgpack body (layout in this module's docstring).

    Validates every field against its declared type; raises :class:`~rtrun.EncodeError` naming
    the tag and the field path when a value does not fit.
    """
    codec = _codec_of(type(msg))
    if codec.pack_flat is not None:
        wire = codec.pack_flat(msg)
        if wire is not None:
            return wire
    out: list[Any] = [codec.prefix]
    try:
        codec.emit_fields(msg, out, _packer().pack)
    except _Bad as bad:
        raise EncodeError(f"cannot encode {codec.tag}{bad.located()}: {bad.rule}") from None
    return b"".join(out)


def flat_encoder(cls: type) -> Callable[[Any], bytes | None] | None:
    """``cls``'s one-call encode, for a sender that caches it per class: its result is
    :func:`encode`'s, or None when that message needs :func:`encode` itself (a value to
    convert or reject, a large array). None if ``cls`` has none (not a message class, or a field
    the flat encode does not cover).

    Why: a sparse sender meets a cold cache, where each call layer costs several µs; a sender
    that already knows the class skips :func:`encode`'s own lookup and call.
    """
    if "__rtrun_fields__" not in cls.__dict__:
        return None
    return _codec_of(cls).pack_flat


FAST_DECODE = True
"""Try the compiled msgspec path (:mod:`rtrun._codec_fast`) before the general decoder. Read
from this module on every :func:`decode` call; the tests switch it off to compare both."""


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
    if type(data) is bytes:  # the common case: immutable, already one byte per item
        view: bytes | memoryview = data
    else:
        view = memoryview(data)
        if view.ndim != 1 or view.format != "B":
            view = view.cast("B")
        view = view.toreadonly()
    if len(view) > max_size:
        raise DecodeError("oversize", f"{len(view)} bytes exceeds max_size={max_size}")
    if FAST_DECODE:
        message = fast_decode(view, expected, len(view) >= ZERO_COPY_MIN_SIZE)  # None: general walk
        if message is not None:
            return message
    try:
        codec, version, entries = _read_body(view, ZERO_COPY_MIN_SIZE)
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


def decoder_for(cls: type[M], *, max_size: int = DEFAULT_MAX_SIZE) -> Callable[[bytes], M]:
    """``decode(data, expected=cls, max_size=max_size)`` as one function, for a receiver of one
    message class: the compiled path's per-call lookups (class plans, map size) are done once or
    inline. Same results and errors; anything unusual takes :func:`decode` itself.

    Why: a sparse receiver meets a cold cache, where each Python call layer costs several µs.
    Measured on the Zenoh benchmark's message with a cold cache: 18-22 µs instead of 33 µs.
    """
    plans = fast_plans(cls) if "__rtrun_fields__" in cls.__dict__ else None
    if plans is None:  # not a message class, or no mirror: the general entry decides
        return functools.partial(decode, expected=cls, max_size=max_size)
    small, large = plans
    tag = cls.__rtrun_tag__

    def decode_one(data: bytes) -> M:
        if FAST_DECODE and type(data) is bytes and 0 < len(data) <= max_size:
            count = data[0] - 0x80  # a fixmap: what rtrun writes for up to 13 fields
            if 0 <= count <= 0x0F and _registry.get(tag) is cls:
                plan = large if len(data) >= ZERO_COPY_MIN_SIZE else small
                try:
                    return plan.build(plan.decoder.decode(data), count)  # type: ignore[no-any-return]
                except (ValueError, Reject):  # (as fast_decode: the general path decides)
                    pass
        return decode(data, expected=cls, max_size=max_size)

    return decode_one
