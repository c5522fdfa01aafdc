"""The receiving end of a Zenoh channel (design: :mod:`rtrun._zenoh_channel`).

Methods named ``_on_*`` run on Zenoh threads: they only parse, decode and deposit under the
bridge lock. Everything else runs in the event loop.
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Generic, TypeVar

import anyio
from anyio import BrokenResourceError, ClosedResourceError, EndOfStream, WouldBlock
from anyio.lowlevel import checkpoint

from ._bridge import ThreadBridge
from ._channel import ChannelStatistics, Policy
from ._errors import DecodeError, TransportError
from ._wire import (
    HEADER_SCHEMA_VERSION,
    HEADER_SIZE,
    HEADER_STRUCT,
    CreditBody,
    Header,
    HeaderError,
    HeaderFields,
    KeyExprError,
    MessageType,
    credit_key,
    header_from_fields,
    id_from_token_key,
    pack_credit,
    receiver_token_key,
    sender_token_pattern,
    unpack_batch,
    unpack_header_fields,
)
from ._zenoh import QOS_CONTROL, ZenohSession
from ._zenoh_port import (
    CREDIT_REFRESH_S,
    DEAD_EPOCHS_KEPT,
    EOS_GRACE_S,
    FRESH,
    Codec,
    LogThrottle,
    PortBase,
    check_policy,
    header_bytes,
    kernel_codec,
    log,
)

__all__ = ["ZenohReceivePort", "open_zenoh_receiver"]

T = TypeVar("T")

MAX_SEQUENCE_JUMP: Final = 1 << 24
"""A forward jump larger than this within one epoch is implausible (16 M lost samples without a
lease expiry): the sample is dropped as ``header_sequence_jump`` unless the next one continues
from it (then the receiver resynchronizes). One forged sample cannot wedge a channel."""

_OVERFLOW = {
    "drop_newest": "overflow_newest",
    "drop_oldest": "overflow_oldest",
    "latest": "superseded",
    "block": "credit_violation",
}

BAD_IDS_KEPT: Final = 64
"""Ids of the live epoch's undecodable bodies remembered, so a gap over them is not counted
twice (``body_*`` and ``sequence_gap``); a bound, because forged samples choose their ids."""

RECEIVE_BUDGET: Final = 32
"""Receives served straight from the buffer before ``receive`` checkpoints again (a cooperative
budget, as Tokio's). In between, a pending cancellation is noticed at the next checkpoint, at
most this many items later -- the same as asyncio's own queues, which never yield on a hit."""

Item = tuple[int, HeaderFields, Any]  # (sequence id, header fields, decoded item)
_DATA: Final = int(MessageType.DATA)
_EOS: Final = int(MessageType.END_OF_STREAM)
_HEADER_UNPACK: Final = HEADER_STRUCT.unpack
_BATCH: Final = int(MessageType.DATA_BATCH)


@dataclass(eq=False, slots=True)
class _ReceiverCore:
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
    waiting: int = 0
    credit_counter: int = 0
    last_header: HeaderFields | None = None
    resources: list[Any] = field(default_factory=list)
    credit_pub: Any = None
    receiving: bool = False  # a receive() is waiting (the loop-side mutex, see receive)
    turn: anyio.Event | None = None  # set when that receive() leaves, if others wait for it
    closed: bool = False
    budget: int = 0  # receives left before the next forced scheduling point

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
        self.dropped[reason] = self.dropped.get(reason, 0) + count

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
            verdict = "receiver_closed"
        if verdict is not None:
            self.drop_locked(verdict)
            return False
        if len(self.buffer) >= max(self.capacity, 1):
            self.drop_locked(_OVERFLOW[self.policy])
            if self.policy in ("drop_newest", "block"):
                return False
            self.buffer.popleft()
        self.buffer.append((header[2], header, item))
        return self.bridge.notify_locked()

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
        if self.epoch is not None and self.epoch not in self.dead:
            self.dead.append(self.epoch)
        if self.buffer:
            self.drop_locked("stale_epoch", len(self.buffer))
            self.buffer.clear()
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
        if epoch in self.dead:  # a partition healed: same process, same epoch -> resume
            self.dead.remove(epoch)
        self.live.add(epoch)
        if epoch != self.epoch:
            self._adopt_locked(epoch)

    def _sender_vanished_locked(self, epoch: int) -> None:
        self.live.discard(epoch)
        if epoch != self.epoch or self.eos is not None:
            return
        self.dead.append(epoch)
        if self.buffer:
            self.drop_locked("peer_vanished", len(self.buffer))
            self.buffer.clear()
        self.epoch = self.expected = None
        self.broken_pending = True
        log.warning("%s: sender (epoch %08x) vanished", self.key, epoch)

    # both sides ---------------------------------------------------------------------------
    def credit_locked(self, mtype: MessageType = MessageType.CREDIT) -> tuple[bytes, bytes]:
        """Build a grant (see the design): lowest sequence id possibly still buffered + window."""
        self.credit_counter += 1
        consumed = FRESH if self.expected is None else self.expected
        if self.buffer:
            consumed = self.buffer[0][0]
        window = self.capacity if self.capacity > 0 else (1 if self.waiting else 0)
        body = pack_credit(CreditBody(receiver_id=self.rid, capacity=window, consumed=consumed))
        return header_bytes(mtype, self.credit_counter, self.epoch or 0), body

    def publish(self, credit: tuple[bytes, bytes]) -> None:
        attachment, body = credit
        try:
            self.credit_pub.put(body, attachment)
        except TransportError:  # session closed: nobody left to tell
            log.debug("%s: credit not sent (session closed)", self.key)

    # event loop ---------------------------------------------------------------------------
    def take_locked(self) -> tuple[Any, tuple[bytes, bytes] | None]:
        """The oldest item and the credit to publish for it (``block`` only)."""
        if self.broken_pending:
            self.broken_pending = False
            raise BrokenResourceError(f"the sender of {self.key!r} vanished")
        if self.buffer:
            _, header, item = self.buffer.popleft()
            self.received += 1
            self.last_header = header
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

    def ready_locked(self) -> bool:
        eos_now = self.eos is not None and (self.expected is None or self.expected >= self.eos)
        return self.closed or self.broken_pending or bool(self.buffer) or eos_now

    def statistics(self) -> ChannelStatistics:
        with self.bridge.lock:
            sender_open = self.epoch in self.live and self.eos is None
            return ChannelStatistics(
                capacity=self.capacity,
                policy=self.policy,
                sent=self.arrived,
                received=self.received,
                dropped=MappingProxyType(dict(self.dropped)),
                queued=len(self.buffer),
                open_send_ports=int(sender_open),
                open_receive_ports=self.open_clones,
                tasks_waiting_send=0,
                tasks_waiting_receive=self.waiting,
            )

    def close_clone(self) -> None:
        with self.bridge.lock:
            self.open_clones -= 1
            last = self.open_clones == 0
            if last:
                self.closed = True
                if self.buffer:
                    self.drop_locked("receiver_closed", len(self.buffer))
                    self.buffer.clear()
                goodbye = self.credit_locked(MessageType.RECEIVER_CLOSED)
            else:
                due = self.bridge.notify_locked()
        if not last:
            if due:
                self.bridge.wake()
            return
        self.publish(goodbye)
        for resource in reversed(self.resources):
            resource.close()
        self.bridge.close()


class ZenohReceivePort(PortBase, Generic[T]):
    """Receiving end of a cross-host channel; same interface as :class:`rtrun.ReceivePort`."""

    __slots__ = ()
    _core: _ReceiverCore

    def receive_nowait(self) -> T:
        """Receive without waiting. Raises ClosedResourceError, BrokenResourceError (once per
        vanished sender), EndOfStream (sender closed, all delivered) or WouldBlock."""
        if self._closed:
            raise ClosedResourceError
        core = self._core
        with core.bridge.lock:
            item, credit = core.take_locked()
        if credit is not None:
            core.publish(credit)
        return item  # type: ignore[no-any-return]

    async def receive(self) -> T:
        """Receive the next item, waiting if needed. A checkpoint (scheduling and cancellation
        point) whenever it waits and at least every :data:`RECEIVE_BUDGET` receives; items
        already buffered are returned without one in between (module docstring)."""
        core = self._core
        if core.budget > 0 and core.buffer:  # (an unlocked peek: re-checked under the lock)
            core.budget -= 1
            if core.policy != "block" and not self._closed:  # hot path: take_locked, inlined
                with core.bridge.lock:
                    if core.buffer and not core.broken_pending:
                        _, header, item = core.buffer.popleft()
                        core.received += 1
                        core.last_header = header
                        return item  # type: ignore[no-any-return]
        else:
            await checkpoint()
            core.budget = RECEIVE_BUDGET
        try:
            return self.receive_nowait()
        except WouldBlock:
            pass
        # One task at a time parks on the bridge. Theory: receive() runs on the event loop only,
        # so a plain flag is the mutex; later receivers wait for an Event set when the holder
        # leaves, then re-check (no FIFO order among competing clones, as before). An anyio.Lock
        # cost ~15 µs per acquire+release with a cold cache, half of it after the wake-up.
        while core.receiving:
            if core.turn is None:
                core.turn = anyio.Event()
            await core.turn.wait()
        core.receiving = True
        try:
            return await self._wait_and_take(core)
        finally:
            core.receiving = False
            if core.turn is not None:
                core.turn.set()
                core.turn = None

    async def _wait_and_take(self, core: _ReceiverCore) -> T:
        with core.bridge.lock:
            core.waiting += 1
            credit = core.credit_locked() if core.capacity == 0 else None
        try:
            if credit is not None:
                core.publish(credit)  # rendezvous: "one item welcome now"
            while True:
                try:
                    return self.receive_nowait()
                except WouldBlock:
                    pass
                await self._park(core)
        finally:
            with core.bridge.lock:
                core.waiting -= 1

    async def _park(self, core: _ReceiverCore) -> None:
        def ready() -> bool:
            return self._closed or core.ready_locked()

        if core.policy != "block" and core.eos_deadline is None:
            await core.bridge.wait_until(ready)  # no timer needed: the hot path stays cheap
            core.budget = RECEIVE_BUDGET  # it waited: other tasks had their turn
            return
        timeout = CREDIT_REFRESH_S
        if core.eos_deadline is not None:
            timeout = max(0.0, min(timeout, core.eos_deadline - anyio.current_time()))
        with anyio.move_on_after(timeout) as scope:
            await core.bridge.wait_until(ready)
        core.budget = RECEIVE_BUDGET
        if scope.cancelled_caught and core.eos is None:
            with core.bridge.lock:
                credit = core.credit_locked()
            core.publish(credit)

    async def wait_for_sender(self) -> None:
        """Wait until a sender of this key is live (its token was seen)."""
        await checkpoint()
        core = self._core
        await core.bridge.wait_until(lambda: core.epoch is not None and core.epoch in core.live)

    @property
    def last_header(self) -> Header | None:
        """Attachment header of the item most recently returned (episode, sender time...)."""
        fields = self._core.last_header
        return None if fields is None else header_from_fields(fields)

    def clone(self) -> ZenohReceivePort[T]:
        """Another receive port on the same channel (competing consumers)."""
        if self._closed:
            raise ClosedResourceError
        return ZenohReceivePort._create(self._core)

    def close(self) -> None:
        """Close this clone (idempotent); the last one tells the sender (RECEIVER_CLOSED)."""
        if self._closed:
            return
        self._closed = True
        self._core.close_clone()

    def statistics(self) -> ChannelStatistics:
        """Receiver-side snapshot: ``sent`` counts arrivals plus sequence gaps."""
        return self._core.statistics()

    @property
    def key(self) -> str:
        """The data key expression."""
        return self._core.key

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        try:
            return await self.receive()
        except EndOfStream:
            raise StopAsyncIteration from None


def open_zenoh_receiver(
    session: ZenohSession,
    key: str,
    capacity: int,
    policy: Policy,
    *,
    message_type: type | None = None,
    codec: Codec | None = None,
) -> ZenohReceivePort[Any]:
    """Open the receiving end of the cross-host channel ``key`` with ``capacity``/``policy``.

    ``message_type`` restricts decoding to one message class (others are dropped as
    ``body_wrong_type``); ``codec`` replaces the kernel codec (tests, foreign payloads).
    """
    check_policy(capacity, policy)
    core = _ReceiverCore(
        session=session,
        key=key,
        capacity=capacity,
        policy=policy,
        codec=codec or kernel_codec(message_type),
        throttle=LogThrottle(key),
    )
    port: ZenohReceivePort[Any] = ZenohReceivePort._create(core)
    core.open()
    return port
