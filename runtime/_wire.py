"""rtrun's Zenoh wire format: the attachment header and the key-expression schema (sans-io).

Nothing here imports Zenoh or does I/O; :mod:`rtrun._zenoh` and :mod:`rtrun._zenoh_channel` use
these pure functions, and the README ("Split a graph across machines") documents the same layout for third-party clients.

Attachment header
-----------------
Every sample rtrun publishes carries a 27-byte little-endian attachment, ``struct`` format
``<HBQIqI``::

    offset size type  field
    0      2    u16   schema_version   HEADER_SCHEMA_VERSION (1); anything else is dropped
    2      1    u8    message_type     a MessageType value (DATA, END_OF_STREAM, CREDIT, ...)
    3      8    u64   sequence_id      per (sender, epoch) counter starting at 0; gaps = drops
    11     4    u32   episode_id       episode the message belongs to (0 = none)
    15     8    i64   sender_ns        sender's monotonic clock in ns; echoed opaquely, never
                                       compared with another host's clock
    23     4    u32   session_epoch    sender session epoch; a new process = a new epoch

The payload (body) of a DATA sample is the kernel codec's msgpack encoding (``rtrun.encode``).
Control samples (END_OF_STREAM, CREDIT, SENDER_STATE, ...) have the bodies documented on
:class:`MessageType`.

Compatibility. Control bodies only ever grow at the end: a reader takes the fields it knows
from the front and ignores the rest (up to :data:`MAX_CONTROL_BODY`), so a newer peer's longer
body is understood by this version. The 16-byte CREDIT body of earlier versions is still read
(its ``waiting``/``open_ports`` then read as 0/1); SENDER_STATE (7) is new, and an earlier
receiver drops it as an unknown message type (counted ``header_message_type``, no harm done).
Earlier *senders* read only 16-byte credits: a ``block`` channel needs both ends at this version.

Key expressions
---------------
Every key is rooted at the *verbatim chunk* ``@rtrun`` followed by the graph name, so a stray
``**`` subscription from another application never matches rtrun traffic (Zenoh wildcards do not
match chunks starting with ``@``), while ``@rtrun/**`` matches every rtrun data key::

    @rtrun/<graph>/<seg>/.../<seg>                 data samples of one channel
    @rtrun/<graph>/<seg>/.../<seg>/@credit         receiver -> sender flow-control samples
    @rtrun/<graph>/<seg>/.../<seg>/@tx/<epoch>     liveliness token of a live sender
    @rtrun/<graph>/<seg>/.../<seg>/@rx/<id>        liveliness token of a live receiver
    @rtrun/<graph>/@host/<host>[/<actor>]          liveliness token of a host / an actor

System chunks start with ``@`` and therefore never collide with a user segment and are invisible
to ``@rtrun/**`` subscribers (zenoh-cli sees data only).

Sanitization rule (decision, the brief only asks that user segments be sanitized): a user segment
must be non-empty, at most :data:`MAX_SEGMENT_LEN` bytes of UTF-8, and may contain only
``[A-Za-z0-9_.-]``; everything else is *rejected* with :class:`KeyExprError` rather than escaped.
Graph, actor, port and host names are identifiers chosen by the user in ``graph.toml``; silently
rewriting them would make two different names collide on the wire, and a rejected name gives a
clear error at validation time. Leading ``@`` (verbatim chunks), ``*``, ``$`` (Zenoh's ``$*``
sub-chunk wildcard), ``/`` (level separator), ``#`` and ``?`` (selector syntax) are thus all
impossible in user segments. Subscriber patterns may replace whole segments by ``*`` (single-level
wildcard); ``**`` and ``$*`` are never produced.
"""

from __future__ import annotations

import enum
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import msgspec

from ._errors import RtrunError

__all__ = [
    "HEADER_SCHEMA_VERSION",
    "HEADER_SIZE",
    "HEADER_STRUCT",
    "KEY_ROOT",
    "MAX_CONTROL_BODY",
    "MAX_SEGMENT_LEN",
    "CreditBody",
    "Header",
    "HeaderError",
    "HeaderFields",
    "KeyExprError",
    "MessageType",
    "SenderStateBody",
    "channel_key",
    "check_segment",
    "credit_key",
    "header_from_fields",
    "host_token_key",
    "host_token_pattern",
    "id_from_token_key",
    "pack_batch",
    "pack_credit",
    "pack_header",
    "pack_header_fields",
    "pack_sender_state",
    "receiver_token_key",
    "receiver_token_pattern",
    "sender_token_key",
    "sender_token_pattern",
    "subscriber_pattern",
    "unpack_batch",
    "unpack_credit",
    "unpack_header",
    "unpack_header_fields",
    "unpack_sender_state",
]

_HEADER = struct.Struct("<HBQIqI")
_BATCH_ENCODER = msgspec.msgpack.Encoder()
_BATCH_DECODER = msgspec.msgpack.Decoder(list[bytes])
HEADER_STRUCT: Final = _HEADER
"""The header's ``struct.Struct``, for the hot paths that pack/unpack plain tuples directly (no
field checks: :func:`pack_header_fields` / :func:`unpack_header_fields` do those)."""
HEADER_SIZE = _HEADER.size
"""27 bytes: the packed size of the attachment header (checked at import below)."""
assert HEADER_SIZE == 27, "the attachment header layout is a public wire contract"

HEADER_SCHEMA_VERSION = 1
"""Version of this header layout and of the key schema. Receivers drop any other version."""

KEY_ROOT = "@rtrun"
"""First chunk of every rtrun key: a verbatim chunk, matched only by itself."""

MAX_SEGMENT_LEN = 128
"""Longest user segment in bytes. Generous for names; keeps keys far below Zenoh's limits."""

_SEGMENT_RE = re.compile(r"[A-Za-z0-9_.\-]+")
_U8, _U16, _U32, _U64 = 0xFF, 0xFFFF, 0xFFFF_FFFF, 0xFFFF_FFFF_FFFF_FFFF
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1


class HeaderError(RtrunError, ValueError):
    """An attachment header is malformed. ``reason`` is a stable drop-counter key.

    Reasons: ``"size"`` (not 27 bytes), ``"schema_version"`` (unsupported version),
    ``"message_type"`` (unknown message type), ``"field_range"`` (a value does not fit its field),
    ``"credit_size"`` (a CREDIT body is neither 16 bytes nor 24 to :data:`MAX_CONTROL_BODY`),
    ``"state_size"`` (a SENDER_STATE body is not 8 to :data:`MAX_CONTROL_BODY` bytes).
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"invalid rtrun wire header ({reason}): {detail}")
        self.reason = reason
        self.detail = detail


class KeyExprError(RtrunError, ValueError):
    """A name cannot be used as a key-expression segment; the message states the rule."""


class MessageType(enum.IntEnum):
    """The ``message_type`` byte: what kind of frame a sample is. 0 is reserved (invalid)."""

    DATA = 1
    """Body: one msgpack-encoded message (``rtrun.encode``). Consumes a sequence id."""
    END_OF_STREAM = 2
    """Body: empty. The sender closed its last clone. ``sequence_id`` = number of DATA samples
    sent in this epoch (the next unused id), so the receiver can tell whether data is still in
    flight. Sent reliably."""
    CREDIT = 3
    """Body: :class:`CreditBody` (24 bytes, ``<IiQII``; 16 from earlier versions). Receiver ->
    sender flow control and the receiving end's state on the ``.../@credit`` key;
    ``session_epoch`` names the *sender* epoch it answers (0: none yet); ``sequence_id`` is a
    per-receiver counter so a reordered older grant is ignored."""
    END_OF_STREAM_ACK = 5
    """Body: :class:`CreditBody`. The receiver processed END_OF_STREAM (on the ``@credit`` key):
    everything sent before it was handled, so the sender's ``aclose()`` may return."""
    RECEIVER_CLOSED = 4
    """Body: :class:`CreditBody`. The receiving port was closed on purpose (on the ``@credit``
    key): the sender raises ``BrokenResourceError`` once no receiver is left, like in-process."""
    DATA_BATCH = 6
    """Body: a msgpack array of ``bin``, each one DATA body (:func:`pack_batch`). Message ``i``
    has sequence id ``sequence_id + i``; the batch consumes that many ids. Sent when a task
    publishes several messages within one event-loop iteration (see ``_zenoh_sender``)."""
    SENDER_STATE = 7
    """Body: :class:`SenderStateBody` (8 bytes, ``<II``). Sender -> receiver on the data key
    (reliable, the data lane): the sending end's open clones and tasks waiting in ``send``,
    published when either changes and when a receiver first credits the sender.
    ``sequence_id`` is a per-sender counter (an older state is ignored); consumes no id."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Header:
    """The decoded 27-byte attachment header of one sample."""

    message_type: MessageType
    """What kind of frame this is."""
    sequence_id: int
    """Per (sender, epoch) counter of DATA samples, starting at 0 (u64)."""
    episode_id: int = 0
    """Episode this message belongs to; 0 when not in an episode (u32)."""
    sender_ns: int = 0
    """Sender's monotonic clock in ns at send time (i64). Echo it, never compare across hosts."""
    session_epoch: int = 0
    """Epoch of the sending session (u32); see :mod:`rtrun._zenoh_channel`."""
    schema_version: int = HEADER_SCHEMA_VERSION
    """Header layout version (u16)."""


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise HeaderError("field_range", f"{name}={value!r} is not an integer")
    if not low <= value <= high:
        raise HeaderError("field_range", f"{name}={value} outside [{low}, {high}]")


def pack_header(header: Header) -> bytes:
    """Pack ``header`` into its 27-byte little-endian form; raises :class:`HeaderError`."""
    return pack_header_fields(
        int(header.message_type),
        header.sequence_id,
        header.episode_id,
        header.sender_ns,
        header.session_epoch,
        header.schema_version,
    )


def pack_header_fields(
    message_type: int,
    sequence_id: int,
    episode_id: int,
    sender_ns: int,
    session_epoch: int,
    schema_version: int = HEADER_SCHEMA_VERSION,
) -> bytes:
    """Hot-path twin of :func:`pack_header` taking plain ints (no dataclass per message)."""
    try:
        return _HEADER.pack(schema_version, message_type, sequence_id, episode_id, sender_ns, session_epoch)
    except struct.error as exc:  # struct range-checks every field against its C type
        raise HeaderError("field_range", f"a header field does not fit its type: {exc}") from None


HeaderFields = tuple[int, int, int, int, int, int]
"""``(schema_version, message_type, sequence_id, episode_id, sender_ns, session_epoch)``."""

_MESSAGE_TYPES = frozenset(int(t) for t in MessageType)


def unpack_header_fields(data: bytes | bytearray | memoryview | None) -> HeaderFields:
    """Hot-path twin of :func:`unpack_header`: validated plain fields, no dataclass."""
    if data is None or len(data) != HEADER_SIZE:
        size = "none" if data is None else f"{len(data)} bytes"
        raise HeaderError("size", f"expected {HEADER_SIZE} bytes, got {size}")
    fields: HeaderFields = _HEADER.unpack(data)
    if fields[0] != HEADER_SCHEMA_VERSION:
        raise HeaderError(
            "schema_version", f"version {fields[0]} (this rtrun speaks {HEADER_SCHEMA_VERSION})"
        )
    if fields[1] not in _MESSAGE_TYPES:
        raise HeaderError("message_type", f"unknown message type {fields[1]}")
    return fields


def header_from_fields(fields: HeaderFields) -> Header:
    """Build the :class:`Header` of fields returned by :func:`unpack_header_fields`."""
    version, mtype, seq, episode, sender_ns, epoch = fields
    return Header(
        message_type=MessageType(mtype),
        sequence_id=seq,
        episode_id=episode,
        sender_ns=sender_ns,
        session_epoch=epoch,
        schema_version=version,
    )


def unpack_header(data: bytes | bytearray | memoryview | None) -> Header:
    """Parse a received attachment. Raises :class:`HeaderError` naming the rule broken.

    A missing attachment (``None``) is reported as ``size`` like any wrong length.
    """
    return header_from_fields(unpack_header_fields(data))


_CREDIT_V1 = struct.Struct("<IiQ")
_CREDIT = struct.Struct("<IiQII")
_SENDER_STATE = struct.Struct("<II")
MAX_CONTROL_BODY: Final = 256
"""Longest control body read (bytes past the known fields are ignored: later extensions)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CreditBody:
    """Body of a CREDIT sample (``<IiQII``, 24 bytes): the receiver's flow-control grant and
    what the sending end reports about the receiving end (see ``rtrun._zenoh_channel``).

    The sender may have at most ``window`` DATA samples of the answered epoch beyond
    ``consumed``: it may send sequence id ``s`` while ``s < consumed + window``. The window is
    the channel's capacity plus the receives waiting (each one takes an item, as in-process),
    so ``window - waiting`` is the capacity.
    """

    receiver_id: int
    """Random u32 identifying the receiving port instance (a restarted receiver has a new one)."""
    window: int
    """Capacity + ``waiting`` (i32, >= ``waiting``). A 16-byte credit carries the window only."""
    consumed: int
    """Sequence ids below this were taken off the receiver's queue (or lost) (u64)."""
    waiting: int = 0
    """Tasks waiting in ``receive`` on the receiving port's clones (u32; bytes 16-19)."""
    open_ports: int = 1
    """Open clones of the receiving port (u32; bytes 20-23)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SenderStateBody:
    """Body of a SENDER_STATE sample (``<II``, 8 bytes): the sending end's state."""

    open_ports: int
    """Open clones of the sending port (u32)."""
    waiting: int
    """Tasks waiting in ``send`` (for credit) on those clones (u32)."""


def pack_batch(bodies: Sequence[bytes]) -> bytes:
    """A DATA_BATCH body: the DATA bodies as one msgpack array of ``bin``."""
    return _BATCH_ENCODER.encode(bodies)


def unpack_batch(data: bytes) -> list[bytes]:
    """The DATA bodies of a DATA_BATCH body (copied out: batches hold small messages only, and
    ``bytes`` is the decoder's fastest input).

    Raises :class:`HeaderError` (``malformed``) unless it is a non-empty msgpack array of
    ``bin`` with nothing after it.
    """
    try:
        bodies = _BATCH_DECODER.decode(data)
    except ValueError as exc:  # msgspec's decode/validation errors are ValueErrors
        raise HeaderError("malformed", f"a DATA_BATCH body must be an array of bin: {exc}") from None
    if not bodies:
        raise HeaderError("malformed", "a DATA_BATCH body must not be empty")
    return bodies


def pack_credit(body: CreditBody) -> bytes:
    """Pack a CREDIT body; raises :class:`HeaderError` (``field_range``) on bad values."""
    _check_range("receiver_id", body.receiver_id, 0, _U32)
    _check_range("window", body.window, 0, 2**31 - 1)
    _check_range("consumed", body.consumed, 0, _U64)
    _check_range("waiting", body.waiting, 0, body.window)
    _check_range("open_ports", body.open_ports, 0, _U32)
    return _CREDIT.pack(body.receiver_id, body.window, body.consumed, body.waiting, body.open_ports)


def unpack_credit(data: bytes | bytearray | memoryview) -> CreditBody:
    """Parse a CREDIT body: 16 bytes (earlier versions) or 24 up to :data:`MAX_CONTROL_BODY`
    (extra bytes ignored); raises :class:`HeaderError` (``credit_size``/``field_range``)."""
    size = len(data)
    if size == _CREDIT_V1.size:
        receiver_id, window, consumed = _CREDIT_V1.unpack(data)
        waiting, open_ports = 0, 1
    elif _CREDIT.size <= size <= MAX_CONTROL_BODY:
        receiver_id, window, consumed, waiting, open_ports = _CREDIT.unpack_from(data)
    else:
        raise HeaderError(
            "credit_size", f"expected 16 or {_CREDIT.size}-{MAX_CONTROL_BODY} bytes, got {size}"
        )
    _check_range("window", window, 0, 2**31 - 1)
    _check_range("waiting", waiting, 0, window)
    return CreditBody(
        receiver_id=receiver_id, window=window, consumed=consumed, waiting=waiting, open_ports=open_ports
    )


def pack_sender_state(body: SenderStateBody) -> bytes:
    """Pack a SENDER_STATE body; raises :class:`HeaderError` (``field_range``) on bad values."""
    _check_range("open_ports", body.open_ports, 0, _U32)
    _check_range("waiting", body.waiting, 0, _U32)
    return _SENDER_STATE.pack(body.open_ports, body.waiting)


def unpack_sender_state(data: bytes | bytearray | memoryview) -> SenderStateBody:
    """Parse a SENDER_STATE body (8 bytes up to :data:`MAX_CONTROL_BODY`, extra ignored);
    raises :class:`HeaderError` (``state_size``)."""
    if not _SENDER_STATE.size <= len(data) <= MAX_CONTROL_BODY:
        raise HeaderError(
            "state_size", f"expected {_SENDER_STATE.size}-{MAX_CONTROL_BODY} bytes, got {len(data)}"
        )
    open_ports, waiting = _SENDER_STATE.unpack_from(data)
    return SenderStateBody(open_ports=open_ports, waiting=waiting)


# --- key expressions ------------------------------------------------------------------------


def check_segment(segment: str, *, what: str = "segment") -> str:
    """Return ``segment`` if it is a valid user key segment, else raise :class:`KeyExprError`.

    Rule: non-empty, at most :data:`MAX_SEGMENT_LEN` bytes, characters ``[A-Za-z0-9_.-]`` only
    (so no ``/ * $ # ? @``, no whitespace, no ``..``-only tricks matter since ``.`` is inert in
    Zenoh key expressions).
    """
    if not isinstance(segment, str) or not segment:
        raise KeyExprError(f"{what} {segment!r}: key segments must be non-empty strings")
    if len(segment.encode()) > MAX_SEGMENT_LEN:
        raise KeyExprError(f"{what} {segment!r}: key segments are at most {MAX_SEGMENT_LEN} bytes")
    if _SEGMENT_RE.fullmatch(segment) is None:
        raise KeyExprError(
            f"{what} {segment!r}: key segments may only contain letters, digits, '_', '.' and '-'"
            " (no '/', '*', '$', '#', '?', '@', spaces)"
        )
    return segment


def _join(graph: str, segments: Sequence[str]) -> str:
    if isinstance(segments, str):
        raise KeyExprError("channel segments must be a sequence of names, not one string")
    if not segments:
        raise KeyExprError("a channel key needs at least one segment after the graph name")
    parts = [check_segment(graph, what="graph name")]
    parts += [check_segment(s, what="channel segment") for s in segments]
    return "/".join([KEY_ROOT, *parts])


def channel_key(graph: str, segments: Sequence[str]) -> str:
    """Data key of one channel: ``@rtrun/<graph>/<seg>/...``.

    The launcher's convention for a cross-host edge ``source = "cam/frames"`` feeding input
    ``frames`` of actor ``policy`` is ``channel_key(graph, ["cam", "frames", "policy", "frames"])``
    (one key per edge: the Zenoh channel is point-to-point like an in-process channel).
    """
    return _join(graph, segments)


def subscriber_pattern(graph: str, segments: Sequence[str | None]) -> str:
    """A subscriber pattern where ``None`` segments become single-level ``*`` wildcards.

    ``subscriber_pattern("g", [None, "obs"]) == "@rtrun/g/*/obs"``. ``**`` is never produced.
    """
    if isinstance(segments, str) or not segments:
        raise KeyExprError("a pattern needs a non-empty sequence of segments (None = '*')")
    parts = [check_segment(graph, what="graph name")]
    parts += ["*" if s is None else check_segment(s, what="pattern segment") for s in segments]
    return "/".join([KEY_ROOT, *parts])


def _check_channel_key(key: str) -> str:
    chunks = key.split("/")
    if len(chunks) < 3 or chunks[0] != KEY_ROOT:
        raise KeyExprError(f"{key!r}: channel keys look like '{KEY_ROOT}/<graph>/<segment>...'")
    for chunk in chunks[1:]:
        check_segment(chunk, what="channel key chunk")
    return key


def credit_key(data_key: str) -> str:
    """Flow-control key of a channel: ``<data_key>/@credit`` (receiver -> sender)."""
    return f"{_check_channel_key(data_key)}/@credit"


def sender_token_key(data_key: str, epoch: int) -> str:
    """Liveliness key of a live sender of ``data_key`` in session epoch ``epoch``."""
    _check_range("session_epoch", epoch, 0, _U32)
    return f"{_check_channel_key(data_key)}/@tx/{epoch:08x}"


def sender_token_pattern(data_key: str) -> str:
    """Liveliness pattern matching every sender token of ``data_key``."""
    return f"{_check_channel_key(data_key)}/@tx/*"


def receiver_token_key(data_key: str, receiver_id: int) -> str:
    """Liveliness key of a live receiving port (``receiver_id``: random u32) of ``data_key``."""
    _check_range("receiver_id", receiver_id, 0, _U32)
    return f"{_check_channel_key(data_key)}/@rx/{receiver_id:08x}"


def receiver_token_pattern(data_key: str) -> str:
    """Liveliness pattern matching every receiver token of ``data_key``."""
    return f"{_check_channel_key(data_key)}/@rx/*"


def id_from_token_key(token_key: str) -> int:
    """The epoch / receiver id (8 hex digits) ending a token key; raises :class:`KeyExprError`."""
    head, sep, tail = token_key.rpartition("/")
    if not sep or not head or len(tail) != 8:
        raise KeyExprError(f"{token_key!r}: channel tokens end with '/<8 hex digits>'")
    try:
        return int(tail, 16)
    except ValueError:
        raise KeyExprError(f"{token_key!r}: the last chunk must be 8 hex digits") from None


def host_token_key(graph: str, host: str, actor: str | None = None) -> str:
    """Presence token of a host (``@rtrun/<graph>/@host/<host>``) or one of its actors."""
    parts = [KEY_ROOT, check_segment(graph, what="graph name"), "@host"]
    parts.append(check_segment(host, what="host name"))
    if actor is not None:
        parts.append(check_segment(actor, what="actor name"))
    return "/".join(parts)


def host_token_pattern(graph: str) -> str:
    """Liveliness pattern matching every host-level token of ``graph`` (not actor tokens)."""
    return f"{KEY_ROOT}/{check_segment(graph, what='graph name')}/@host/*"
