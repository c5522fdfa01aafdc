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
    DEAD_EPOCHS_KEPT,
    EOS_GRACE_S,
    FRESH,
    Codec,
    LogThrottle,
    header_bytes,
    log,
)

__all__ = ["BAD_IDS_KEPT", "MAX_SEQUENCE_JUMP", "ReceiverCore"]

MAX_SEQUENCE_JUMP: Final = 1 << 24
"""A forward jump larger than this within one epoch is implausible (16 M lost samples without a
lease expiry): the sample is dropped as ``header_sequence_jump`` unless the next one continues
from it (then the receiver resynchronizes). One forged sample cannot wedge a channel."""

BAD_IDS_KEPT: Final = 64
"""Ids of the live epoch's undecodable bodies remembered, so a gap over them is not counted
twice (``body_*`` and ``sequence_gap``); a bound, because forged samples choose their ids."""

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
    epoch: int | None = None
    expected: int | None = None
    jump_to: int | None = None
    live: set[int] = field(default_factory=set)
    dead: deque[int] = field(default_factory=lambda: deque(maxlen=DEAD_EPOCHS_KEPT))
    bad_ids: deque[int] = field(default_factory=lambda: deque(maxlen=BAD_IDS_KEPT))
    eos: int | None = None
    eos_deadline: float | None = None
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
                        seq = header[2]
                        if (  # _deposit_locked's outcome when the live epoch's next id has room
                            seq == self.expected
                            and header[5] == self.epoch
                            and len(self.buffer) < self.capacity
                            and not self.closed
                        ):
                            self.arrived += 1
                            self.expected, self.jump_to = seq + 1, None  # as _check_sequence_locked
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
        if header[5] == self.epoch:
            self.bad_ids.append(header[2])

    def _deposit_locked(self, header: HeaderFields, item: Any) -> bool:
        """Queue one decoded item per the policy; True if the loop must be woken."""
        self.arrived += 1
        verdict = self._accept_epoch_locked(header[5])
        if verdict is None:
            verdict = self._check_sequence_locked(header[2])
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

    def _check_sequence_locked(self, seq: int) -> str | None:
        expected = self.expected
        if expected is not None and seq < expected:
            return "stale_sequence"
        if expected is not None and seq - expected > MAX_SEQUENCE_JUMP and seq != self.jump_to:
            self.jump_to = seq + 1
            return "header_sequence_jump"
        if expected is not None and seq != self.jump_to and seq > expected:
            gap = seq - expected - sum(1 for bad in set(self.bad_ids) if expected <= bad < seq)
            if gap:  # (ids already counted as undecodable bodies are not lost twice)
                self.arrived += gap
                self.drop_locked("sequence_gap", gap)
        self.expected, self.jump_to = seq + 1, None
        return None

    def _accept_epoch_locked(self, epoch: int) -> str | None:
        if epoch == self.epoch:
            return None
        if epoch in self.dead:
            return "stale_epoch"
        if epoch in self.live or self.epoch is None or self.epoch not in self.live:
            self._adopt_locked(epoch)
            return None
        return "unknown_epoch"

    def _adopt_locked(self, epoch: int) -> None:
        """Follow the sender incarnation ``epoch`` and retire the current one. What the current
        one left in the buffer is kept if it ended with END_OF_STREAM (sent for good: delivered
        before the new sender's items, as in-process when a closed output reopens), otherwise
        it is dropped (``stale_epoch``: a crashed or superseded sender)."""
        if self.epoch is not None and self.epoch not in self.dead:
            self.dead.append(self.epoch)
        if self.eos is None:
            discard_all(self.buffer, self.dropped, "stale_epoch")
        self.epoch, self.expected, self.jump_to = epoch, None, None
        self.bad_ids.clear()
        self.eos = self.eos_deadline = None

    def _on_eos(self, header: HeaderFields) -> None:
        with self.bridge.lock:
            if self._accept_epoch_locked(header[5]) is not None:
                return
            self.eos = header[2]
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
            if epoch in self.dead or (old is not None and old[0] == epoch and old[1] >= number):
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
        self.live.add(epoch)
        if epoch == self.epoch:
            return
        if epoch in self.dead:  # a partition healed: same sender, same epoch -> resume ...
            if self.epoch is not None and self.epoch in self.live:
                return  # ... unless a newer sender is live: a superseded one stays retired
            self.dead.remove(epoch)
        self._adopt_locked(epoch)

    def _sender_vanished_locked(self, epoch: int) -> None:
        self.live.discard(epoch)
        if epoch != self.epoch or self.eos is not None:
            return
        self.dead.append(epoch)
        discard_all(self.buffer, self.dropped, "peer_vanished")
        self.epoch = self.expected = None
        self.broken_pending = True
        log.warning("%s: sender (epoch %08x) vanished", self.key, epoch)

    # both sides ---------------------------------------------------------------------------
    def credit_locked(self, mtype: MessageType = MessageType.CREDIT) -> tuple[bytes, bytes]:
        """Build a grant (see the design): the lowest sequence id possibly still buffered, a
        window of capacity + waiting receives, and this end's waiting tasks and open clones."""
        self.credit_counter += 1
        consumed = FRESH if self.expected is None else self.expected
        carried = 0  # items a previous sender left (see _adopt_locked): they use up window
        for seq, header, _ in self.buffer:
            if header[5] == self.epoch:
                consumed = seq  # the oldest item of the live sender still buffered
                break
            carried += 1
        body = pack_credit(
            CreditBody(
                receiver_id=self.rid,
                window=max(0, self.capacity + self.waiting - carried),
                consumed=consumed,
                waiting=self.waiting,
                open_ports=self.open_clones,
            )
        )
        return header_bytes(mtype, self.credit_counter, self.epoch or 0), body

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
        if self.eos is not None and self._eos_reached_locked(anyio.current_time()):  # clock: EOS only
            raise EndOfStream
        raise WouldBlock

    def _eos_reached_locked(self, now: float) -> bool:
        assert self.eos is not None
        if self.expected is None or self.expected >= self.eos:
            return True
        if self.eos_deadline is None:
            self.eos_deadline = now + EOS_GRACE_S
            return False
        if now < self.eos_deadline:
            return False
        self.arrived += self.eos - self.expected
        self.drop_locked("sequence_gap", self.eos - self.expected)
        self.expected = self.eos
        return True

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
        eos_now = self.eos is not None and (self.expected is None or self.expected >= self.eos)
        return self.closed or self.broken_pending or bool(self.buffer) or eos_now

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
        if self.epoch not in self.live or self.eos is not None:
            return 0, 0
        state = self.sender_state
        if state is None or state[0] != self.epoch:
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
