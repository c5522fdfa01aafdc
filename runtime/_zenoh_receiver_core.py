"""The receiving end's shared state: what its Zenoh threads deposit and its credits (design:
:mod:`rtrun._zenoh_channel`; the port API on top: :mod:`rtrun._zenoh_receiver`).

Methods named ``_on_*`` run on Zenoh threads: they only parse, decode and deposit under the
bridge lock. The others are called from the event loop by the port (``*_locked`` ones with the
bridge lock held).
"""

from __future__ import annotations

import secrets
from collections import deque
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

import anyio
from anyio import BrokenResourceError, EndOfStream, WouldBlock

from ._bridge import ThreadBridge
from ._channel import ChannelStatistics
from ._errors import DecodeError, TransportError
from ._overflow import CREDIT_VIOLATION, OVERFLOW_NEWEST, RECEIVER_CLOSED, count_drop, discard_all, offer
from ._wire import (
    HEADER_SCHEMA_VERSION,
    HEADER_SIZE,
    HEADER_STRUCT,
    CreditBody,
    HeaderError,
    HeaderFields,
    KeyExprError,
    MessageType,
    credit_key,
    id_from_token_key,
    pack_credit,
    receiver_token_key,
    sender_token_pattern,
    unpack_batch,
    unpack_header_fields,
    unpack_sender_state,
)
from ._zenoh import QOS_CONTROL, ZenohSession
from ._zenoh_port import (
    Codec,
    LogThrottle,
    header_bytes,
    log,
)
from ._zenoh_protocol import InboundStream

__all__ = ["ReceiverCore"]

Item = tuple[int, HeaderFields, Any]  # (sequence id, header fields, decoded item)
_DATA: Final = int(MessageType.DATA)
_EOS: Final = int(MessageType.END_OF_STREAM)
_HEADER_UNPACK: Final = HEADER_STRUCT.unpack
_BATCH: Final = int(MessageType.DATA_BATCH)
_STATE: Final = int(MessageType.SENDER_STATE)


@dataclass(eq=False, slots=True)
class ReceiverCore:
    """One receiving port's shared state (every clone points at it)."""

    session: ZenohSession
    key: str
    capacity: int
    policy: str
    codec: Codec
    throttle: LogThrottle
    bridge: ThreadBridge = field(default_factory=ThreadBridge)
    rid: int = field(default_factory=lambda: secrets.randbits(32))
    buffer: deque[Item] = field(default_factory=deque)
    stream: InboundStream = field(default_factory=InboundStream)  # epochs, sequence, EOS (pure)
    broken_pending: bool = False
    arrived: int = 0
    received: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    open_clones: int = 0
    waiting: int = 0  # tasks waiting in receive, every clone (each widens the window by one)
    peak_waiting: int = 0  # the most ever granted at once (bounds the buffer: _bound_locked)
    sender_state: tuple[int, int, int, int] | None = None  # SENDER_STATE: epoch, number, ports, waiting
    credit_counter: int = 0
    last_header: HeaderFields | None = None
    resources: list[Any] = field(default_factory=list)
    credit_pub: Any = None
    receiving: bool = False  # a receive() is parked (the loop-side mutex: _wait_turn_and_take)
    turn: anyio.Event | None = None  # set when that receive() leaves, if others wait for it
    closed: bool = False

    @property
    def epoch(self) -> int | None:
        """The sender incarnation this port follows (see :class:`InboundStream`)."""
        return self.stream.epoch

    def open(self) -> None:
        s, key = self.session, self.key
        self.credit_pub = s.declare_publisher(credit_key(key), QOS_CONTROL)
        self.resources.append(self.credit_pub)
        self.resources.append(s.declare_sample_subscriber(key, self._on_sample))
        self.resources.append(s.declare_token(receiver_token_key(key, self.rid)))
        self.resources.append(
            s.declare_liveliness_subscriber(sender_token_pattern(key), self._on_sender_token)
        )

    def drop_locked(self, reason: str, count: int = 1) -> None:
        count_drop(self.dropped, reason, count)

    def _bad(self, reason: str, detail: str) -> None:
        with self.bridge.lock:
            self.arrived += 1
            self.drop_locked(reason)
        self.throttle(reason, detail)

    # Zenoh threads -----------------------------------------------------------------------
    def _on_sample(self, sample: Any) -> None:
        """Zenoh's data callback. The common case -- a DATA sample with a valid header and
        body, the next id of the live epoch, room in the buffer -- runs inline (one Python
        frame: with the cold cache a sparse sample meets, each call layer costs µs)."""
        attachment = sample.attachment
        payload = sample.payload.to_bytes()
        if attachment is not None:
            attachment = attachment.to_bytes()
            if len(attachment) == HEADER_SIZE:
                header = _HEADER_UNPACK(attachment)
                if header[1] == _DATA and header[0] == HEADER_SCHEMA_VERSION:
                    try:  # decoded here, so bad input never displaces a good item in the buffer
                        item = self.codec.decode(payload)
                    except DecodeError as exc:
                        return self._on_bad_body(header, exc)
                    bridge = self.bridge
                    with bridge.lock:
                        seq, stream = header[2], self.stream
                        if (  # _deposit_locked's outcome when the live epoch's next id has room
                            seq == stream.expected
                            and header[5] == stream.epoch
                            and len(self.buffer) < self.capacity
                            and not self.closed
                        ):
                            self.arrived += 1
                            stream.expected, stream.jump_to = seq + 1, None  # as InboundStream.admit
                            self.buffer.append((seq, header, item))
                            due = bridge.notify_locked()
                        else:
                            due = self._deposit_locked(header, item)
                    if due:
                        bridge.wake()
                    return
        self._on_other(payload, attachment)

    def _on_other(self, payload: bytes, attachment: bytes | None) -> None:
        """Every sample but :meth:`_on_sample`'s inline case: bad headers, batches, EOS."""
        try:
            header = unpack_header_fields(attachment)
        except HeaderError as exc:
            return self._bad(f"header_{exc.reason}", str(exc))
        if header[1] == _BATCH:
            try:
                bodies = unpack_batch(payload)
            except HeaderError as exc:
                return self._bad(f"body_{exc.reason}", str(exc))
            return self._on_bodies(header, bodies)
        if header[1] == _DATA:  # (the inline test accepts every valid DATA header first)
            return self._on_bodies(header, [payload])
        if header[1] == _EOS:
            return self._on_eos(header)
        if header[1] == _STATE:
            return self._on_sender_state(header, payload)
        self._bad("header_unexpected_type", f"message type {header[1]} on a data key")

    def _on_bodies(self, header: HeaderFields, bodies: list[bytes]) -> None:
        """Bodies with consecutive ids from ``header``'s: decode every one, then deposit them
        in order under one lock (a bad body is counted and skipped: see _skip_bad_locked)."""
        version, _, first, episode, ns, epoch = header
        items: list[tuple[HeaderFields, Any]] = []
        for i, body in enumerate(bodies):
            item_header = (version, _DATA, first + i, episode, ns, epoch)
            try:
                items.append((item_header, self.codec.decode(body)))
            except DecodeError as exc:
                items.append((item_header, exc))
        due = False
        with self.bridge.lock:
            for item_header, item in items:
                if isinstance(item, DecodeError):
                    self._skip_bad_locked(item_header, f"body_{item.reason}")
                else:
                    due = self._deposit_locked(item_header, item) or due
        if due:
            self.bridge.wake()
        for _, item in items:
            if isinstance(item, DecodeError):
                self.throttle(f"body_{item.reason}", str(item))

    def _on_bad_body(self, header: HeaderFields, error: DecodeError) -> None:
        """A DATA sample whose valid header carries an undecodable body."""
        with self.bridge.lock:
            self._skip_bad_locked(header, f"body_{error.reason}")
        self.throttle(f"body_{error.reason}", str(error))

    def _skip_bad_locked(self, header: HeaderFields, reason: str) -> None:
        """Count an undecodable body (one drop, ``reason``) and remember its id if it claims the
        live epoch, so a later gap over that id does not count it again as ``sequence_gap``.
        The sequence itself never moves for it: garbage on the key carrying the next id must
        not make the real message with that id look stale."""
        self.arrived += 1
        self.drop_locked(reason)
        self.stream.bad_body(header[5], header[2])

    def _deposit_locked(self, header: HeaderFields, item: Any) -> bool:
        """Queue one decoded item per the policy; True if the loop must be woken."""
        self.arrived += 1
        verdict, lost, stale = self.stream.admit(header[5], header[2])
        if stale:
            discard_all(self.buffer, self.dropped, "stale_epoch")
        if lost:
            self.arrived += lost
            self.drop_locked("sequence_gap", lost)
        if verdict is None and self.closed:
            verdict = RECEIVER_CLOSED
        if verdict is not None:
            self.drop_locked(verdict)
            return False
        return self._offer_locked((header[2], header, item))

    def _offer_locked(self, entry: Item) -> bool:
        """Buffer an accepted item per the overflow policy (:func:`rtrun._overflow.offer`, as
        in-process); True if it was buffered and the loop must be woken."""
        try:
            reason = offer(self.buffer, entry, self._bound_locked(), self.policy)
        except WouldBlock:  # ``block`` beyond the granted window: the sender broke the protocol
            reason = CREDIT_VIOLATION
        if reason is None:
            return self.bridge.notify_locked()
        self.drop_locked(reason)
        return reason not in (OVERFLOW_NEWEST, CREDIT_VIOLATION) and self.bridge.notify_locked()

    def _bound_locked(self) -> int:
        """Most items the buffer holds. ``block``: the capacity plus the most receives ever
        granted at once -- items sent under a waiting receive's credit may arrive after it
        left (cancelled); they are kept for the next receive, never dropped. A sender going
        beyond that breaks the protocol: ``credit_violation``."""
        if self.policy == "block":
            return max(self.capacity + self.peak_waiting, 1)
        return max(self.capacity, 1)

    def _on_eos(self, header: HeaderFields) -> None:
        with self.bridge.lock:
            accepted, stale = self.stream.end_of_stream(header[5], header[2])
            if stale:
                discard_all(self.buffer, self.dropped, "stale_epoch")
            if not accepted:
                return
            due = self.bridge.notify_locked()
            ack = self.credit_locked(MessageType.END_OF_STREAM_ACK)
        if due:
            self.bridge.wake()
        self.publish(ack)

    def _on_sender_state(self, header: HeaderFields, payload: bytes) -> None:
        """SENDER_STATE: remember the newest state of each epoch's sender (statistics only)."""
        try:
            body = unpack_sender_state(payload)
        except HeaderError as exc:
            return self._bad(f"control_{exc.reason}", str(exc))
        epoch, number = header[5], header[2]
        with self.bridge.lock:
            old = self.sender_state
            if epoch in self.stream.dead or (old is not None and old[0] == epoch and old[1] >= number):
                return  # a retired sender's, or overtaken by a newer state
            self.sender_state = (epoch, number, body.open_ports, body.waiting)

    def _on_sender_token(self, token_key: str, alive: bool) -> None:
        try:
            epoch = id_from_token_key(token_key)
        except KeyExprError:  # not an rtrun sender token: ignore it
            return
        with self.bridge.lock:
            if alive:
                self._sender_appeared_locked(epoch)
                credit = self.credit_locked()
            else:
                self._sender_vanished_locked(epoch)
                credit = None
            due = self.bridge.notify_locked()
        if due:
            self.bridge.wake()
        if credit is not None:
            self.publish(credit)

    def _sender_appeared_locked(self, epoch: int) -> None:
        if self.stream.sender_appeared(epoch):
            discard_all(self.buffer, self.dropped, "stale_epoch")

    def _sender_vanished_locked(self, epoch: int) -> None:
        if not self.stream.sender_vanished(epoch):
            return
        discard_all(self.buffer, self.dropped, "peer_vanished")
        self.broken_pending = True
        log.warning("%s: sender (epoch %08x) vanished", self.key, epoch)

    # both sides ---------------------------------------------------------------------------
    def credit_locked(self, mtype: MessageType = MessageType.CREDIT) -> tuple[bytes, bytes]:
        """Build a grant (see the design): the lowest sequence id possibly still buffered, a
        window of capacity + waiting receives, and this end's waiting tasks and open clones."""
        self.credit_counter += 1
        stream = self.stream
        window, consumed = stream.grant(((e[1][5], e[0]) for e in self.buffer), self.capacity + self.waiting)
        body = pack_credit(
            CreditBody(
                receiver_id=self.rid,
                window=window,
                consumed=consumed,
                waiting=self.waiting,
                open_ports=self.open_clones,
            )
        )
        return header_bytes(mtype, self.credit_counter, stream.epoch or 0), body

    def announce(self) -> None:
        """Publish a credit now (this end's state changed)."""
        with self.bridge.lock:
            credit = None if self.closed else self.credit_locked()
        if credit is not None:
            self.publish(credit)

    def publish(self, credit: tuple[bytes, bytes]) -> None:
        attachment, body = credit
        try:
            self.credit_pub.put(body, attachment)
        except TransportError:  # session closed: nobody left to tell
            log.debug("%s: credit not sent (session closed)", self.key)

    # event loop ---------------------------------------------------------------------------
    def take_locked(self, waiter: bool = False) -> tuple[Any, tuple[bytes, bytes] | None]:
        """The oldest item and the credit to publish for it (``block`` only). A ``waiter``
        (a receive counted in ``waiting``) stops waiting as it takes the item, in the same
        step: the credit's window then no longer counts it."""
        if self.broken_pending:
            self.broken_pending = False
            raise BrokenResourceError(f"the sender of {self.key!r} vanished")
        if self.buffer:
            _, header, item = self.buffer.popleft()
            self.received += 1
            self.last_header = header
            if waiter:
                self.waiting -= 1
            credit = self.credit_locked() if self.policy == "block" else None
            return item, credit
        if self.stream.eos is not None:
            reached, lost = self.stream.end_reached(anyio.current_time())  # (clock: EOS only)
            if lost:
                self.arrived += lost
                self.drop_locked("sequence_gap", lost)
            if reached:
                raise EndOfStream
        raise WouldBlock

    def enter_wait(self) -> None:
        """A receive starts waiting: it widens the window by one (``block``: told at once)."""
        with self.bridge.lock:
            self.waiting += 1
            self.peak_waiting = max(self.peak_waiting, self.waiting)
            credit = self.credit_locked() if self.policy == "block" else None
        if credit is not None:
            self.publish(credit)

    def leave_wait(self) -> None:
        """A waiting receive left without an item (cancelled, closed, end of stream...): its
        share of the window is withdrawn (``block``: at once, so no later send counts on it)."""
        with self.bridge.lock:
            self.waiting -= 1
            credit = self.credit_locked() if self.policy == "block" and not self.closed else None
        if credit is not None:
            self.publish(credit)

    def ready_locked(self) -> bool:
        return self.closed or self.broken_pending or bool(self.buffer) or self.stream.ended

    def statistics(self) -> ChannelStatistics:
        """The receiving end's view (what each field means: ``rtrun._zenoh_channel``)."""
        with self.bridge.lock:
            senders, waiting_send = self._sender_view_locked()
            return ChannelStatistics(
                capacity=self.capacity,
                policy=self.policy,
                sent=self.arrived,
                received=self.received,
                dropped=MappingProxyType(dict(self.dropped)),
                queued=len(self.buffer),
                open_send_ports=senders,
                open_receive_ports=self.open_clones,
                tasks_waiting_send=waiting_send,
                tasks_waiting_receive=self.waiting,
            )

    def _sender_view_locked(self) -> tuple[int, int]:
        """(open send ports, tasks waiting in send) of the live sender: its latest
        SENDER_STATE, else (1, 0); (0, 0) without a live sender or after END_OF_STREAM."""
        stream = self.stream
        if not stream.following_live or stream.eos is not None:
            return 0, 0
        state = self.sender_state
        if state is None or state[0] != stream.epoch:
            return 1, 0
        return state[2], state[3]

    def close_clone(self) -> None:
        """Count one clone closed and tell the sender; the last one says RECEIVER_CLOSED and
        undoes every declaration."""
        due = False
        with self.bridge.lock:
            self.open_clones -= 1
            last = self.open_clones == 0
            if last:
                self.closed = True
                discard_all(self.buffer, self.dropped, RECEIVER_CLOSED)
                message = self.credit_locked(MessageType.RECEIVER_CLOSED)
            else:
                due = self.bridge.notify_locked()  # (a receive parked on that clone leaves)
                message = self.credit_locked()  # one clone fewer
        if due:
            self.bridge.wake()
        self.publish(message)
        if last:
            for resource in reversed(self.resources):
                resource.close()
            self.bridge.close()
