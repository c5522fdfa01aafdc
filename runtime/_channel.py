"""In-process channels: ``open_channel[T](capacity, policy)`` -> ``(SendPort[T], ReceivePort[T])``.

Theory of operation
-------------------
A channel is one shared :class:`_ChannelState` (a bounded deque, the waiting senders and
receivers, counters) and any number of port objects pointing at it. The algorithm is anyio's
memory object stream (``anyio/streams/memory.py``) extended with an overflow policy
(:data:`~rtrun._overflow.OverflowPolicy`, applied by the engine every transport shares:
:func:`rtrun._overflow.offer`):

``block``
    Backpressure. ``send`` waits while the buffer holds ``capacity`` items and no receiver is
    waiting. ``capacity = 0`` is a rendezvous (trio's advice: "if in doubt, use 0").
``drop_oldest``
    Never waits. On overflow the oldest buffered item is discarded (reason ``"overflow_oldest"``).
``drop_newest``
    Never waits. On overflow the item being sent is discarded (reason ``"overflow_newest"``).
``latest``
    A one-slot mailbox: the newest value wins; an unread value is replaced (reason
    ``"superseded"``). The normal policy for camera frames and observations. Capacity must be 1.

A sender hands an item directly to the oldest waiting receiver when there is one (that is the
lowest-latency hop), otherwise it buffers it. A receiver that is being cancelled is skipped so
an item is never lost in a cancelled task (anyio's ``has_pending_cancellation`` check). A blocked
``send`` is atomic under cancellation: either the item was taken by a receiver, or the send
raised and the item was withdrawn.

Close semantics follow anyio exactly, and the Zenoh transport reproduces them:
``ClosedResourceError`` when *you* closed the port; ``EndOfStream`` on receive once every send
port clone is closed **and** the buffer is drained (buffered items are still delivered);
``BrokenResourceError`` on send once every receive port clone is closed. An unclosed port
emits ``ResourceWarning`` when garbage-collected.

Closing a port while its own tasks wait in it (anyio 4.16): a blocked ``receive`` raises
``ClosedResourceError`` -- unless a sender had already handed it an item, which it returns. A
blocked ``send`` whose item is still waiting has it withdrawn and raises
``ClosedResourceError``; one whose item a receiver already took (``receive_nowait`` moves a
waiting sender's item into the buffer) returns normally, so "``send`` raised" always means "the
item was not sent" and a retry never duplicates. Each port clone keeps the events of its own
blocked tasks (``_waiters``) for this; after close the send side keeps only the withdrawn ones.

Every item accepted by ``send`` counts in ``sent``; every item handed to a receiver counts in
``received``; every discarded item counts in ``dropped[reason]``; so at any time
``sent == received + queued + sum(dropped)``.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType, TracebackType
from typing import Any, Final, Generic, Self, TypeVar, final

from anyio import (
    BrokenResourceError,
    ClosedResourceError,
    EndOfStream,
    Event,
    WouldBlock,
    get_current_task,
)
from anyio.lowlevel import checkpoint

from ._overflow import (
    OVERFLOW_POLICIES,
    RECEIVER_CLOSED,
    OverflowPolicy,
    check_overflow,
    count_drop,
    discard_all,
    offer,
)

__all__ = [
    "POLICIES",
    "ChannelStatistics",
    "OverflowPolicy",
    "ReceivePort",
    "SendPort",
    "open_channel",
]

T = TypeVar("T")

POLICIES: Final[tuple[str, ...]] = OVERFLOW_POLICIES
"""Every overflow policy (kept under its old name for the modules that import it from here)."""

_check_config = check_overflow  # (its old name: the graph validator imports it from here)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelStatistics:
    """A snapshot of one channel's counters (same fields for every transport)."""

    capacity: int
    """Maximum number of buffered items."""
    policy: str
    """Overflow policy: ``block``, ``drop_oldest``, ``drop_newest`` or ``latest``."""
    sent: int
    """Items accepted by ``send``/``send_nowait`` (including ones dropped later)."""
    received: int
    """Items handed to a receiver."""
    dropped: Mapping[str, int]
    """Discarded items per reason (``overflow_oldest``, ``superseded``, ``sequence_gap``...)."""
    queued: int
    """Items currently buffered."""
    open_send_ports: int
    """Send port clones not yet closed."""
    open_receive_ports: int
    """Receive port clones not yet closed."""
    tasks_waiting_send: int
    """Tasks blocked in ``send`` (``block`` policy only)."""
    tasks_waiting_receive: int
    """Tasks blocked in ``receive``."""

    @property
    def dropped_total(self) -> int:
        """Sum of ``dropped`` over every reason."""
        return sum(self.dropped.values())


class _Receiver(Generic[T]):
    """A parked receiver: the item a sender hands over and the receiving task's identity."""

    __slots__ = ("item", "task")

    def __init__(self) -> None:
        self.task = get_current_task()
        self.item: T

    def __repr__(self) -> str:
        item = getattr(self, "item", None)  # (unset until a sender hands one over)
        return f"{type(self).__name__}(task={self.task!r}, item={item!r})"


@dataclass(eq=False)
class _ChannelState(Generic[T]):
    capacity: int
    policy: OverflowPolicy
    buffer: deque[T] = field(default_factory=deque)
    open_send: int = 0
    open_receive: int = 0
    waiting_receivers: OrderedDict[Event, _Receiver[T]] = field(default_factory=OrderedDict)
    waiting_senders: OrderedDict[Event, T] = field(default_factory=OrderedDict)
    sent: int = 0
    received: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str, count: int = 1) -> None:
        count_drop(self.dropped, reason, count)

    def statistics(self) -> ChannelStatistics:
        return ChannelStatistics(
            capacity=self.capacity,
            policy=self.policy,
            sent=self.sent,
            received=self.received,
            dropped=MappingProxyType(dict(self.dropped)),
            queued=len(self.buffer),
            open_send_ports=self.open_send,
            open_receive_ports=self.open_receive,
            tasks_waiting_send=len(self.waiting_senders),
            tasks_waiting_receive=len(self.waiting_receivers),
        )


@final
class open_channel(tuple["SendPort[T]", "ReceivePort[T]"]):  # trio-style factory class
    """Open an in-process channel and return ``(send_port, receive_port)``.

    ``open_channel[Frame](1, "latest")`` documents the item type for type checkers.

    Args:
        capacity: maximum buffered items (0 = rendezvous, only with ``block``).
        policy: ``"block"`` (default), ``"drop_oldest"``, ``"drop_newest"`` or ``"latest"``.

    Raises:
        ChannelError: the capacity/policy combination is invalid (the message says why).
    """

    def __new__(
        cls, capacity: int = 0, policy: OverflowPolicy = "block"
    ) -> tuple[SendPort[T], ReceivePort[T]]:  # type: ignore[misc]
        check_overflow(capacity, policy)
        state: _ChannelState[T] = _ChannelState(capacity=capacity, policy=policy)
        return (SendPort._create(state), ReceivePort._create(state))

    def __init__(self, capacity: int = 0, policy: OverflowPolicy = "block") -> None:
        pass  # pragma: no cover - __new__ returns a plain tuple


class PortLifecycle:
    """Lifecycle shared by every port, in-process or Zenoh: no public constructor, sync
    idempotent ``close()`` plus ``aclose()``, context managers, ``closed``, and a
    ``ResourceWarning`` when an open port is garbage-collected."""

    __slots__ = ("__weakref__", "_closed")

    _factory: str = "open_channel()"
    """Named in the error raised by the (forbidden) public constructor."""

    def __init__(self) -> None:
        raise TypeError(f"{type(self).__name__} has no public constructor; use {self._factory}")

    def close(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close this port (a checkpoint); same effect as :meth:`close`."""
        self.close()
        await checkpoint()

    @property
    def closed(self) -> bool:
        """Whether this port clone has been closed."""
        return self._closed

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            warnings.warn(
                f"unclosed {type(self).__name__} at {id(self):#x}", ResourceWarning, stacklevel=1, source=self
            )


class _Port(PortLifecycle):
    """Shared machinery of in-process send and receive ports."""

    __slots__ = ("_state", "_waiters")

    def statistics(self) -> ChannelStatistics:
        """Snapshot of the channel's counters (identical from every port of the channel)."""
        return self._state.statistics()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()  # in-process close never waits: no checkpoint while unwinding


@final
class SendPort(_Port, Generic[T]):
    """The sending end of a channel. Clone it for fan-in; close every clone for end-of-stream."""

    __slots__ = ()

    @classmethod
    def _create(cls, state: _ChannelState[T]) -> SendPort[T]:
        port = object.__new__(cls)
        port._state, port._closed, port._waiters = state, False, None
        state.open_send += 1
        return port

    def send_nowait(self, item: T) -> None:
        """Send without waiting.

        Raises:
            ClosedResourceError: this port was closed.
            BrokenResourceError: every receive port is closed.
            WouldBlock: ``block`` policy, buffer full and no receiver waiting.
        """
        state = self._state
        if self._closed:
            raise ClosedResourceError
        if not state.open_receive:
            raise BrokenResourceError
        while state.waiting_receivers:
            event, receiver = state.waiting_receivers.popitem(last=False)
            if not receiver.task.has_pending_cancellation():
                receiver.item = item
                state.sent += 1
                state.received += 1
                event.set()
                return
        self._buffer(state, item)

    @staticmethod
    def _buffer(state: _ChannelState[T], item: T) -> None:
        """Buffer ``item`` per the overflow policy (raises ``WouldBlock``: ``block``, full)."""
        reason = offer(state.buffer, item, state.capacity, state.policy)
        if reason is not None:
            state.drop(reason)
        state.sent += 1

    async def send(self, item: T) -> None:
        """Send an item; with ``block`` wait for room, with any other policy never wait.

        Always a checkpoint. Atomic under cancellation: if it raises, the item was not sent.

        Raises:
            ClosedResourceError: this port was closed, before the call or while waiting with
                the item not yet taken (it is withdrawn; a taken item returns normally).
            BrokenResourceError: every receive port is closed (also while waiting).
        """
        await checkpoint()
        try:
            self.send_nowait(item)
        except WouldBlock:
            await self._wait_to_send(item)

    async def _wait_to_send(self, item: T) -> None:
        if self._waiters is None:
            self._waiters = set()
        event = Event()
        self._waiters.add(event)
        self._state.waiting_senders[event] = item
        try:
            await event.wait()
        finally:
            not_consumed = event in self._state.waiting_senders
            if not_consumed:
                del self._state.waiting_senders[event]
            withdrawn = self._closed and event in self._waiters
            self._waiters.discard(event)
        if not_consumed:
            raise BrokenResourceError from None
        if withdrawn:
            raise ClosedResourceError from None

    def clone(self) -> SendPort[T]:
        """Another send port on the same channel (fan-in). Raises ClosedResourceError if closed."""
        if self._closed:
            raise ClosedResourceError
        return SendPort._create(self._state)

    def close(self) -> None:
        """Close this clone (idempotent). When the last clone closes, receivers see EndOfStream."""
        if self._closed:
            return
        self._closed = True
        state = self._state
        state.open_send -= 1
        if state.open_send == 0:
            events = list(state.waiting_receivers)
            state.waiting_receivers.clear()
            for event in events:
                event.set()
        if self._waiters:
            self._waiters = self._withdraw(state, self._waiters)

    @staticmethod
    def _withdraw(state: _ChannelState[Any], waiters: set[Event]) -> set[Event]:
        """Wake this clone's blocked senders; return those whose item was still waiting (withdrawn).

        A sender whose item a receiver already took is woken too but not returned: its ``send``
        resumes normally, because the item *was* delivered (anyio 4.16; issue 14 defect 5).
        """
        withdrawn: set[Event] = set()
        for event in waiters:
            if event in state.waiting_senders:
                del state.waiting_senders[event]
                withdrawn.add(event)
            event.set()
        return withdrawn


@final
class ReceivePort(_Port, Generic[T]):
    """The receiving end of a channel. Iterate it with ``async for`` until end-of-stream."""

    __slots__ = ()

    @classmethod
    def _create(cls, state: _ChannelState[T]) -> ReceivePort[T]:
        port = object.__new__(cls)
        port._state, port._closed, port._waiters = state, False, None
        state.open_receive += 1
        return port

    def receive_nowait(self) -> T:
        """Receive without waiting.

        Raises:
            ClosedResourceError: this port was closed.
            EndOfStream: the buffer is empty and every send port is closed.
            WouldBlock: nothing available yet.
        """
        state = self._state
        if self._closed:
            raise ClosedResourceError
        if state.waiting_senders:
            event, item = state.waiting_senders.popitem(last=False)
            state.buffer.append(item)
            state.sent += 1
            event.set()
        if state.buffer:
            state.received += 1
            return state.buffer.popleft()
        if not state.open_send:
            raise EndOfStream
        raise WouldBlock

    async def receive(self) -> T:
        """Receive the next item, waiting if needed. Always a checkpoint.

        Raises:
            ClosedResourceError: this port was closed (also while waiting).
            EndOfStream: every send port is closed and the buffer is drained.
        """
        await checkpoint()
        try:
            return self.receive_nowait()
        except WouldBlock:
            return await self._wait_to_receive()

    async def _wait_to_receive(self) -> T:
        if self._waiters is None:
            self._waiters = set()
        event = Event()
        self._waiters.add(event)
        receiver: _Receiver[T] = _Receiver()
        self._state.waiting_receivers[event] = receiver
        try:
            await event.wait()
        finally:
            self._state.waiting_receivers.pop(event, None)
            self._waiters.discard(event)
        try:
            return receiver.item
        except AttributeError:
            if self._closed:
                raise ClosedResourceError from None
            raise EndOfStream from None

    def clone(self) -> ReceivePort[T]:
        """Another receive port on the same channel (competing consumers)."""
        if self._closed:
            raise ClosedResourceError
        return ReceivePort._create(self._state)

    def close(self) -> None:
        """Close this clone (idempotent). When the last clone closes, senders see BrokenResourceError."""
        if self._closed:
            return
        self._closed = True
        state = self._state
        state.open_receive -= 1
        if state.open_receive == 0:
            for event in list(state.waiting_senders):
                event.set()
            self._discard_buffer(state)
        if self._waiters:  # wake this clone's blocked receives: ClosedResourceError (defect 4)
            for event in self._waiters:
                state.waiting_receivers.pop(event, None)
                event.set()
            self._waiters.clear()  # (each woken receive also discards its own event)

    @staticmethod
    def _discard_buffer(state: _ChannelState[Any]) -> None:
        discard_all(state.buffer, state.dropped, RECEIVER_CLOSED)

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        try:
            return await self.receive()
        except EndOfStream:
            raise StopAsyncIteration from None
