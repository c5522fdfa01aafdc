"""The sending end of a Zenoh channel (design: :mod:`rtrun._zenoh_channel`)."""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Final, Generic, NoReturn, TypeVar

import anyio
from anyio import BrokenResourceError, ClosedResourceError, WouldBlock

from ._bridge import ThreadBridge
from ._channel import ChannelStatistics
from ._codec import encode as kernel_encode
from ._codec import flat_encoder
from ._errors import TransportError
from ._lowlevel import checkpoint
from ._overflow import OverflowPolicy, check_overflow
from ._wire import (
    HEADER_SCHEMA_VERSION,
    HEADER_STRUCT,
    HeaderError,
    KeyExprError,
    MessageType,
    SenderStateBody,
    credit_key,
    id_from_token_key,
    pack_batch,
    pack_sender_state,
    receiver_token_pattern,
    sender_token_key,
    unpack_credit,
    unpack_header,
)
from ._zenoh import QoS, ZenohSession, new_epoch
from ._zenoh_port import (
    EOS_BLOCK_TIMEOUT_S,
    Codec,
    PortBase,
    header_bytes,
    kernel_codec,
    log,
)
from ._zenoh_protocol import OutboundCredits

__all__ = ["ZenohSendPort", "open_zenoh_sender"]

T = TypeVar("T")
_DATA = int(MessageType.DATA)
_DATA_BATCH = int(MessageType.DATA_BATCH)
_pack_header = HEADER_STRUCT.pack  # (the hot path's header: no per-field checks)
_now_ns = time.monotonic_ns

QOS_DEFAULT = QoS(reliability="reliable")
"""QoS of a sender opened without one: reliable, congestion ``drop``, priority ``data``."""
BATCH_MAX_MESSAGES = 32
"""A batch is published as soon as it holds this many messages..."""
BATCH_MAX_BYTES = 64 * 1024
"""...or this many body bytes (larger messages effectively go one per sample)."""
BURST_GAP_NS = 250_000
"""A message published less than this after the previous one is part of a burst and opens a
batching window (see ``publish_locked``). A burst of ``send_nowait`` in one loop iteration
is ~2-30 µs per message; a sparse control stream (<= 1 kHz) is >= 1 ms apart and never waits.
Misjudging either way only costs batching efficiency, never order or delivery."""


yield_to_transmit: Final[Callable[[], None]] = getattr(os, "sched_yield", lambda: None)
"""Called once after a put that published a message at once (outside the lock; it releases
the GIL): lets a thread that is runnable on this CPU -- typically Zenoh's transmit thread,
just woken by the put -- run before the sender goes on. Measured with
``benchmarks/zenoh_hop.py`` on the 2-core development VM (p50 ratio to bare zenoh-python,
5 interleaved runs each, without -> with): 4 KB 1.23 -> 1.18, 300 KB 1.11 -> 1.00, 1.2 MB 1.07
-> 1.02, 64 B 1.23 -> 1.20 (8 runs). It costs one system call (~1 µs) when nothing else is
runnable; otherwise the other thread runs first, as it would at the sender's next wait."""

# -----------------------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class _SenderCore:
    session: ZenohSession
    key: str
    policy: str
    qos: QoS
    codec: Codec
    bridge: ThreadBridge = field(default_factory=ThreadBridge)
    seq: int = 0
    open_clones: int = 0
    credits: OutboundCredits = field(default_factory=lambda: OutboundCredits(0))  # (pure: see open)
    dropped: dict[str, int] = field(default_factory=dict)
    waiting: int = 0  # tasks waiting in send (for credit), every clone
    state_counter: int = 0  # numbers SENDER_STATE samples
    eos_sent: bool = False
    eos_acked_by: set[int] = field(default_factory=set)  # receivers that acknowledged our EOS
    episode_id: int = 0
    resources: list[Any] = field(default_factory=list)
    publisher: Any = None
    put: Any = None  # the data publisher's unguarded put (see open)
    put_error: type[Exception] = Exception  # what it raises
    eos_publisher: Any = None
    eos_block_publisher: Any = None
    wait_lock: anyio.Lock | None = None
    window_open: bool = False  # a burst is being batched until the next loop iteration
    last_publish_ns: int = 0  # when the previous message was published or batched
    pending: list[bytes] = field(default_factory=list)  # bodies waiting for the window's end
    pending_bytes: int = 0
    epoch: int = 0  # this sender's (fresh per opened sender: open)
    flat_type: type | None = None  # the class flat_pack encodes (see encode_item)
    flat_pack: Any = None

    def open(self) -> None:
        s, key = self.session, self.key
        # Each sender is an incarnation of its own (a fresh epoch, not the session's): after
        # END_OF_STREAM an actor restarted in the same session opens a new sender on the same
        # key, and its receivers must tell the two apart (issue 15, see the design).
        self.epoch = new_epoch()
        self.credits = OutboundCredits(self.epoch)
        self.publisher = s.declare_publisher(key, self.qos)
        # Only _put uses it, always under bridge.lock, and it is never closed before the
        # session (see the design): its wrapper's lock is redundant on the hot path.
        self.put, self.put_error = self.publisher.unguarded_put()
        # END_OF_STREAM rides the data lane (same priority, reliable) so it arrives after the
        # data; the BLOCK twin is used only from a worker thread by aclose() (see there).
        lane = replace(self.qos, reliability="reliable", congestion="drop")
        self.eos_publisher = s.declare_publisher(key, lane)
        self.eos_block_publisher = s.declare_publisher(key, replace(lane, congestion="block"), data=False)
        self.resources += [self.publisher, self.eos_publisher, self.eos_block_publisher]
        self.resources.append(s.declare_subscriber(credit_key(key), self._on_credit))
        self.resources.append(
            s.declare_liveliness_subscriber(receiver_token_pattern(key), self._on_receiver_token)
        )
        self.resources.append(s.declare_token(sender_token_key(key, self.epoch)))

    # Zenoh threads -----------------------------------------------------------------------
    def _on_receiver_token(self, token_key: str, alive: bool) -> None:
        try:
            rid = id_from_token_key(token_key)
        except KeyExprError:  # not an rtrun receiver token: ignore it
            return
        with self.bridge.lock:
            self.credits.receiver_token(rid, alive)
            due = self.bridge.notify_locked()
        if due:
            self.bridge.wake()

    def _on_credit(self, payload: bytes, attachment: bytes | None) -> None:
        try:
            header = unpack_header(attachment)
            body = unpack_credit(payload)
        except HeaderError as exc:
            with self.bridge.lock:
                self.dropped[f"control_{exc.reason}"] = self.dropped.get(f"control_{exc.reason}", 0) + 1
            return
        resend_eos = tell_state = False
        with self.bridge.lock:
            rid = body.receiver_id
            if header.message_type is MessageType.RECEIVER_CLOSED:
                self.credits.receiver_closed(rid)
            elif header.message_type is MessageType.END_OF_STREAM_ACK:
                if header.session_epoch == self.epoch and self.eos_sent:
                    self.eos_acked_by.add(rid)
            elif header.message_type is MessageType.CREDIT and rid not in self.credits.closed:
                fields = (body.window, body.consumed, body.waiting, body.open_ports)
                first = self.credits.credit(rid, header.sequence_id, header.session_epoch, fields, self.seq)
                tell_state = first and (self.open_clones, self.waiting) != (1, 0)  # (1, 0): assumed
                resend_eos = self.eos_sent and rid not in self.eos_acked_by
            due = self.bridge.notify_locked()
        if due:
            self.bridge.wake()
        if resend_eos:
            self._publish_eos()
        if tell_state:
            self.publish_state()

    # event loop --------------------------------------------------------------------------
    def broken_locked(self) -> bool:
        return self.credits.broken

    def has_credit_locked(self) -> bool:
        return self.policy != "block" or self.credits.may_send(self.seq)

    def encode_item(self, item: Any) -> bytes:
        """``item``'s body. With the kernel codec, the flat encode of the last class seen is
        cached here, so ``send`` can call it directly (one call layer instead of four; each
        costs µs with a cold cache); anything it declines goes through ``codec.encode``."""
        if type(item) is self.flat_type:
            body = self.flat_pack(item)
            return self.codec.encode(item) if body is None else body  # type: ignore[no-any-return]
        if self.codec.encode is kernel_encode:
            pack = flat_encoder(type(item))
            self.flat_type, self.flat_pack = (None, None) if pack is None else (type(item), pack)
        return self.codec.encode(item)

    # Batching (theory): a message that follows the previous one by less than
    # BURST_GAP_NS (a burst of ``send_nowait``) opens a "window" that closes at the next
    # event-loop iteration (``loop.call_soon``); messages published while it is open wait in
    # ``pending`` and go out as one DATA_BATCH sample when the window closes or the batch is
    # full. A burst costs one Zenoh sample (one callback, one GIL acquisition on the receiving
    # side) per batch instead of per message. ``block`` channels never batch (credits are per
    # message) and neither does a non-asyncio loop. An awaited ``send`` joins an open window
    # but never opens one: it yields on every call (the channel contract), and that yield runs
    # the window's callback, so a window it opened would just hold its one message back until
    # the next ``send``; a loop of ``await send()`` therefore publishes each message at once.
    #
    # The first message of a burst, and every sparse message, is published at once, and then
    # the sending thread gets out of the way of Zenoh's transmit thread, which the put woke
    # and which, on a machine with few cores, often waits for this very CPU:
    # - nothing is scheduled after such a put (scheduling the window callback after every
    #   put cost 15-30 µs of one-way latency at 64 B / 4 KB on the 2-core development VM);
    # - the port yields the CPU once (``os.sched_yield``, after releasing the lock; see
    #   :data:`yield_to_transmit`).
    def publish_locked(self, body: bytes, *, may_open: bool = True) -> bool:
        """Publish ``body`` now or add it to the open batch; True if it was put at once.
        ``may_open=False`` (an awaited ``send``) joins a window already open but never opens
        one: ``send`` yields on every call, so a window it opened would only hold its message
        back until its own next call and then publish it alone."""
        now = _now_ns()
        previous, self.last_publish_ns = self.last_publish_ns, now
        if not self.window_open and not (
            may_open
            and now - previous < BURST_GAP_NS
            and len(body) < BATCH_MAX_BYTES
            and self.policy != "block"
            and self._open_window()
        ):  # published at once: _put, inlined (one call layer less on the sparse path)
            attachment = _pack_header(
                HEADER_SCHEMA_VERSION, _DATA, self.seq, self.episode_id, now, self.epoch
            )
            try:
                self.put(body, attachment=attachment)
            except self.put_error as exc:
                self._put_failed(exc)
            self.seq += 1
            return True
        self.pending.append(body)
        self.pending_bytes += len(body)
        if len(self.pending) >= BATCH_MAX_MESSAGES or self.pending_bytes >= BATCH_MAX_BYTES:
            self.flush_locked()
        return False

    def _put(self, mtype: int, body: bytes, count: int, now: int) -> None:
        """Publish one sample stamped ``now`` (the header's sender time) and advance ``seq``."""
        attachment = _pack_header(  # (every field is in range: set_episode checks the only free one)
            HEADER_SCHEMA_VERSION, mtype, self.seq, self.episode_id, now, self.epoch
        )
        try:
            self.put(body, attachment=attachment)
        except self.put_error as exc:
            self._put_failed(exc)
        self.seq += count

    def _put_failed(self, exc: Exception) -> NoReturn:
        self.last_publish_ns = 0  # the next message is no burst: its put reports the error
        raise BrokenResourceError(f"zenoh put on {self.key!r} failed: {exc}") from exc

    def _open_window(self) -> bool:
        """Open the batching window until the next loop iteration; False off asyncio."""
        try:
            loop = asyncio.get_running_loop()  # (the current one: a port may outlive a loop)
        except RuntimeError:  # trio, or no loop: publish every message on its own
            return False
        self.window_open = True
        loop.call_soon(self._close_window)
        return True

    def _close_window(self) -> None:
        """Loop callback at the next iteration: publish what the window collected."""
        with self.bridge.lock:
            self.window_open = False
            self.flush_or_log_locked()

    def flush_or_log_locked(self) -> None:
        """:meth:`flush_locked` for callers with nobody to raise to (a loop callback, closing)."""
        count = len(self.pending)
        try:
            self.flush_locked()
        except BrokenResourceError:  # the session is closing: nobody to tell but the log
            log.warning("%s: %d batched message(s) not published", self.key, count)

    def flush_locked(self) -> None:
        """Publish the pending bodies (one DATA, or one DATA_BATCH) now."""
        bodies, self.pending, self.pending_bytes = self.pending, [], 0
        if len(bodies) == 1:
            self._put(_DATA, bodies[0], 1, _now_ns())
        elif bodies:
            self._put(_DATA_BATCH, pack_batch(bodies), len(bodies), _now_ns())

    def _publish_eos(self, *, blocking: bool = False) -> None:
        """Publish END_OF_STREAM; ``blocking`` (worker threads only) waits for TX queue room."""
        with self.bridge.lock:
            attachment = header_bytes(MessageType.END_OF_STREAM, self.seq, self.epoch, self.episode_id)
        publisher = self.eos_block_publisher if blocking else self.eos_publisher
        try:
            publisher.put(b"", attachment)
        except TransportError:
            log.warning("%s: could not publish end-of-stream (session closed)", self.key)

    def publish_state(self) -> None:
        """Publish SENDER_STATE (open clones, tasks waiting in ``send``) on the data lane, so
        the receiving end's statistics count them (never after END_OF_STREAM: it says 0)."""
        with self.bridge.lock:
            if self.eos_sent:
                return
            self.state_counter += 1
            attachment = header_bytes(
                MessageType.SENDER_STATE, self.state_counter, self.epoch, self.episode_id
            )
            body = pack_sender_state(SenderStateBody(open_ports=self.open_clones, waiting=self.waiting))
        try:
            self.eos_publisher.put(body, attachment)
        except TransportError:
            log.debug("%s: sender state not published (session closed)", self.key)

    def add_waiting(self, delta: int) -> None:
        """Count ``delta`` more tasks waiting in ``send`` and tell the receivers."""
        with self.bridge.lock:
            self.waiting += delta
        self.publish_state()

    def release_clone(self) -> bool:
        """Count one clone closed; True if it was the last (END_OF_STREAM is now due)."""
        with self.bridge.lock:
            self.open_clones -= 1
            last = self.open_clones == 0
            if last:
                self.flush_or_log_locked()  # END_OF_STREAM counts them: they go first
                self.eos_sent = True
            due = self.bridge.notify_locked()
        if due:
            self.bridge.wake()
        return last

    def eos_settled_locked(self) -> bool:
        """Every live receiver acknowledged END_OF_STREAM (vacuously true without receivers)."""
        return self.credits.receivers.keys() <= self.eos_acked_by

    def release(self) -> bool:
        """Undeclare everything once the last clone closed with END_OF_STREAM and every live
        receiver acknowledged it; True if released (or already). Event loop only: a reopened
        output then leaves nothing declared behind (its token leaving breaks no receiver: each
        has the END_OF_STREAM, or follows a newer sender already)."""
        with self.bridge.lock:
            done = self.open_clones == 0 and self.eos_sent and self.eos_settled_locked()
            resources, self.resources = (self.resources, []) if done else ([], self.resources)
        for resource in reversed(resources):
            resource.close()
        return done

    def clone_closed(self) -> None:
        if self.release_clone():
            self._publish_eos()
        else:
            self.publish_state()

    def statistics(self) -> ChannelStatistics:
        """The sending end's view (what each field means: ``rtrun._zenoh_channel``)."""
        with self.bridge.lock:
            capacity, consumed, receive_ports, waiting = self.credits.view(block=self.policy == "block")
            return ChannelStatistics(
                capacity=capacity,
                policy=self.policy,
                sent=self.seq + len(self.pending),
                received=consumed or 0,
                dropped=MappingProxyType(dict(self.dropped)),
                queued=0 if consumed is None else self.seq - consumed,
                open_send_ports=self.open_clones,
                open_receive_ports=receive_ports,
                tasks_waiting_send=self.waiting,
                tasks_waiting_receive=waiting,
            )


class ZenohSendPort(PortBase, Generic[T]):
    """Sending end of a cross-host channel; same interface as :class:`rtrun.SendPort`."""

    __slots__ = ()
    _core: _SenderCore

    def send_nowait(self, item: T) -> None:
        """Publish without waiting. Raises ClosedResourceError, BrokenResourceError (every
        receiver closed on purpose) or WouldBlock (``block`` policy without credit)."""
        core = self._core
        with core.bridge.lock:
            if self._closed:
                raise ClosedResourceError
            if core.credits.closed and core.credits.broken:
                raise BrokenResourceError
            if core.policy == "block" and not core.has_credit_locked():
                raise WouldBlock
            published = core.publish_locked(core.encode_item(item))
        if published:
            yield_to_transmit()

    async def send(self, item: T) -> None:
        """Publish ``item``; with ``block`` wait for the receiver's credit. Always a checkpoint,
        as in-process: a cancellation point (a cancelled task never publishes) and a scheduling
        point. If it raises (also when cancelled while waiting) the item was not sent.

        The checkpoint is taken *before* publishing: yielding to the event loop after ``put``
        was measured to delay the sample (the loop's work competes with Zenoh's transmit
        thread); after the put only the CPU is yielded (:data:`yield_to_transmit`).
        """
        await checkpoint()  # (rtrun._lowlevel: anyio's, minus the dispatch)
        core = self._core
        if core.policy != "block":  # never waits: send_nowait, inlined (the hot path)
            if self._closed:
                raise ClosedResourceError
            if type(item) is core.flat_type:  # encode_item's hit, inlined
                body = core.flat_pack(item)
                if body is None:  # declined: the general encode converts or raises
                    body = core.codec.encode(item)
            else:
                body = core.encode_item(item)
            with core.bridge.lock:
                if core.credits.closed and core.credits.broken:
                    raise BrokenResourceError
                published = core.publish_locked(body, may_open=False)
            if published:
                yield_to_transmit()
            return
        try:
            self.send_nowait(item)
            return
        except WouldBlock:
            pass
        core.add_waiting(1)  # every waiting task counts (and the receiving end is told)
        try:
            await self._wait_and_send(core, item)
        finally:
            core.add_waiting(-1)

    async def _wait_and_send(self, core: _SenderCore, item: T) -> None:
        """Wait for credit, then publish (one task at a time parks on the bridge)."""
        if core.wait_lock is None:
            core.wait_lock = anyio.Lock()
        async with core.wait_lock:
            while True:
                await core.bridge.wait_until(
                    lambda: self._closed or core.broken_locked() or core.has_credit_locked()
                )
                try:
                    return self.send_nowait(item)
                except WouldBlock:  # pragma: no cover - another clone took the credit
                    continue

    async def wait_for_receiver(self) -> None:
        """Wait until a receiving port of this key is live (its token was seen)."""
        await checkpoint()
        core = self._core
        await core.bridge.wait_until(lambda: bool(core.credits.receivers))

    def set_episode(self, episode_id: int) -> None:
        """Stamp later messages with ``episode_id`` (u32) in the header."""
        if type(episode_id) is not int or not 0 <= episode_id <= 0xFFFF_FFFF:
            raise ValueError(
                f"episode_id must be an int in [0, 2**32 - 1] (a u32 header field), got {episode_id!r}"
            )
        with self._core.bridge.lock:
            self._core.flush_locked()  # a batch carries one episode id
            self._core.episode_id = episode_id

    def clone(self) -> ZenohSendPort[T]:
        """Another send port on the same channel (fan-in). Raises ClosedResourceError if closed."""
        if self._closed:
            raise ClosedResourceError
        port: ZenohSendPort[T] = ZenohSendPort._create(self._core)
        self._core.publish_state()
        return port

    def close(self) -> None:
        """Close this clone (idempotent); the last clone publishes END_OF_STREAM.

        Never blocks: if Zenoh's queue is full right now the END_OF_STREAM may be dropped
        (recovered when the receiver's next credit refresh arrives while this session lives).
        Prefer ``aclose()``, which waits for queue room in a worker thread.
        """
        if self._closed:
            return
        self._closed = True
        self._core.clone_closed()

    def release(self) -> bool:
        """Undeclare the channel's Zenoh resources once it ended for good: every clone closed,
        END_OF_STREAM acknowledged by every live receiver. True if released (idempotent);
        otherwise they stay declared until the session closes (END_OF_STREAM may still need to
        be re-published). The launcher calls it when the output reopens."""
        return self._closed and self._core.release()

    def detach(self) -> None:
        """Close this clone *without* END_OF_STREAM: its host is leaving, not the actor ending.

        Receivers then see the sender vanish when the session closes (``BrokenResourceError``
        once, then they wait for the next epoch), which is what a restarting host needs.
        """
        if self._closed:
            return
        self._closed = True
        if not self._core.release_clone():
            self._core.publish_state()

    async def aclose(self) -> None:
        """Close this clone; the last one publishes END_OF_STREAM *reliably*: from a worker
        thread with congestion ``block`` (the event loop never blocks), then waits for the
        receiver's END_OF_STREAM_ACK; both bounded by :data:`EOS_BLOCK_TIMEOUT_S` (a hung peer
        cannot hold shutdown longer)."""
        if self._closed:
            await checkpoint()
            return
        self._closed = True
        if not self._core.release_clone():
            self._core.publish_state()
            await checkpoint()
            return
        core = self._core
        with anyio.move_on_after(EOS_BLOCK_TIMEOUT_S, shield=True):
            await anyio.to_thread.run_sync(
                functools.partial(core._publish_eos, blocking=True), abandon_on_cancel=True
            )
            # Wait for the receiver's acknowledgement: it processed everything sent before the
            # END_OF_STREAM, so closing the session right after cannot turn "closed" into
            # "vanished" on the far side.
            await core.bridge.wait_until(core.eos_settled_locked)

    def statistics(self) -> ChannelStatistics:
        """The sending end's view: own counters, the receivers' as their credits report them
        (``received``/``queued``/``tasks_waiting_receive`` under ``block`` only)."""
        return self._core.statistics()

    @property
    def key(self) -> str:
        """The data key expression."""
        return self._core.key


def open_zenoh_sender(
    session: ZenohSession,
    key: str,
    *,
    policy: OverflowPolicy = "block",
    qos: QoS | None = None,
    codec: Codec | None = None,
) -> ZenohSendPort[Any]:
    """Open the sending end of the cross-host channel ``key`` (a :func:`~rtrun._wire.channel_key`).

    ``policy`` must equal the receiving side's (only ``block`` changes sender behaviour: it waits
    for credits). ``qos`` defaults to reliable, congestion ``drop``, priority ``data``.
    """
    check_overflow(1 if policy != "block" else 0, policy)
    core = _SenderCore(
        session=session, key=key, policy=policy, qos=qos or QOS_DEFAULT, codec=codec or kernel_codec(None)
    )
    port: ZenohSendPort[Any] = ZenohSendPort._create(core)  # counted before any credit can arrive
    try:
        core.open()
    except BaseException:
        port._closed = True  # never opened: nothing to close, no ResourceWarning
        raise
    return port
