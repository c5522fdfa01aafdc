"""The codec's decode reader: the top-level walk and the zero-copy streaming reader.

:func:`rtrun._codec.decode` calls ``_read_body``, which picks the one-call ``unpackb`` path or
the streaming walk that returns bin payloads as read-only slices of the input (theory of
operation in :mod:`rtrun._codec`'s docstring). Raises msgpack's own exceptions and
:class:`~rtrun.DecodeError`; the public API translates the former.
"""

from __future__ import annotations

from typing import Any

import msgpack

from ._codec_ops import _ClassCodec, _codec_of, _only
from ._codec_wire import _ARRAY_HEAD, _BIN_HEADER_LEN, _MAP_HEAD, TAG_KEY, VERSION_KEY, _packb, _wire_name
from ._errors import DecodeError
from ._message import _registry_get

MAX_CONTAINER_LEN = 1 << 20
"""Most items in one msgpack array or map (1 Mi). Bulk data belongs in ndarray fields; the bound
stops a 5-byte array32 header from making the decoder allocate billions of slots."""

MAX_DEPTH = 32
"""Deepest container nesting the array-aware walker follows in Python; deeper values (never
produced by a real layout, which is a few levels deep: message → tuple → nested message → array
map) are unpacked by msgpack in C, whose own stack limit applies."""

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


def _read_body(view: bytes | memoryview, zero_copy_min_size: int) -> tuple[_ClassCodec, int, dict[str, Any]]:
    """Walk the top-level map: returns the class codec, the wire version and the raw entries.

    ``view`` is ``bytes`` or a read-only byte ``memoryview``. ``zero_copy_min_size`` is
    :data:`rtrun._codec.ZERO_COPY_MIN_SIZE`, passed by the caller so that the constant stays one
    module attribute (tests patch it to force either path).
    """
    if not view or view[0] not in _MAP_HEAD:
        raise DecodeError("malformed", "a message body must be one msgpack map")
    peeked = _peek_tag(view)
    if peeked is not None and (not peeked[0].has_array or len(view) < zero_copy_min_size):
        return _read_flat(view, *peeked)
    view = memoryview(view)  # bytes: a read-only view; a memoryview: the same read-only bytes
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
_TAG_KEY_LEN = len(_TAG_KEY_PACKED)


def _peek_tag(view: bytes | memoryview) -> tuple[_ClassCodec, int] | None:
    """``(codec, map length)`` when the first key is ``@tag`` with a short str value (rtrun's own
    layout); ``None`` otherwise, leaving every error to the general walk."""
    head = view[0]
    if head < 0x90:  # fixmap (the caller checked that this is a map header)
        pos, count = 1, head & 0x0F
    else:
        pos = 3 if head == 0xDE else 5
        count = int.from_bytes(view[1:pos], "big")
    key_end = pos + _TAG_KEY_LEN
    if view[pos:key_end] != _TAG_KEY_PACKED or key_end + 1 >= len(view):
        return None
    head = view[key_end]
    if 0xA0 <= head <= 0xBF:
        start = key_end + 1
        end = start + (head & 0x1F)
    elif head == 0xD9:
        start = key_end + 2
        end = start + view[key_end + 1]
    else:
        return None
    if end > len(view):
        return None  # truncated: let the general walk report it
    raw = view[start:end]
    if type(raw) is not bytes:  # a memoryview hashes through its (maybe unhashable) exporter
        raw = bytes(raw)
    codec = _CODEC_BY_RAW_TAG.get(raw)
    if codec is None or _registry_get(codec.tag) is not codec.cls:  # unseen, or re-registered
        try:
            tag = str(raw, "utf-8")
        except UnicodeDecodeError:
            return None
        codec = _codec_for_tag(tag)
        _CODEC_BY_RAW_TAG[raw] = codec
    return codec, count


_CODEC_BY_RAW_TAG: dict[bytes, _ClassCodec] = {}
"""Codecs by the UTF-8 bytes of their tag, skipping the str decode and registry walk on every
message. Holds registered tags only (unknown ones raise before caching), and each hit is checked
against the registry, so re-registering a tag (a module reload) takes effect at once."""


def _read_flat(
    view: bytes | memoryview, codec: _ClassCodec, count: int
) -> tuple[_ClassCodec, int, dict[str, Any]]:
    """Fast path for small bodies and messages without array fields: one C-level unpack."""
    n = len(view)
    containers = n if n < MAX_CONTAINER_LEN else MAX_CONTAINER_LEN
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
    if len(body) != count or not _only(_STR, body):
        raise DecodeError("malformed", "top-level keys must be distinct str")
    version = body.get(VERSION_KEY)
    if type(version) is not int:
        raise DecodeError("malformed", f"{VERSION_KEY!r} must be an int, got {version!r}")
    return codec, version, body


_STR = frozenset({str})


def _codec_for_tag(tag: Any) -> _ClassCodec:
    if type(tag) is not str:
        raise DecodeError("malformed", f"{TAG_KEY!r} must be a str, got {_wire_name(tag)}")
    cls = _registry_get(tag)
    if cls is None:
        raise DecodeError("unknown_tag", f"no message type is registered under tag {tag!r}")
    return _codec_of(cls)
