"""Watched inputs: a producer going away is an expected event, not a crash.

Theory of operation
-------------------
An input's producer can go away in two ordinary ways, and a port reports each with anyio's
resource errors (README, "Channel semantics across the wire"):

* **vanished** -- the producer's host was killed, hung past its Zenoh lease, or stopped: the
  next ``receive()`` raises ``BrokenResourceError`` *once*, then the port waits for the
  producer's next epoch (a restarted host);
* **ended** -- every producer closed its send port (an actor that ended for good, in-process or
  across the wire): ``receive()`` raises ``EndOfStream`` -- and keeps raising it at once until a
  new incarnation of the producer reopens the channel (the launcher does that when the actor is
  brought back).

Left to propagate, the first one crashes the consumer, which counts against its supervisor's
restart intensity, and the second one usually ends its loop for good. :class:`WatchedInput`
turns both into a typed :class:`SourceChange` (``LOST``), keeps listening, and reports
``BACK`` when the producer is present again:

* after *vanished*, as soon as the port sees a live sender (``wait_for_sender()``, Zenoh ports)
  -- before any data, which matters for request/reply links where nothing flows until the
  consumer asks; ports without presence report ``BACK`` with the next item;
* after *ended*, with the next item (polled every ``retry_s``: a closed in-process channel has
  no "sender reopened" signal to wait on).

``ClosedResourceError`` (the actor's own port was closed: the graph is stopping) is never
turned into an event; it propagates.

What restarts an actor and what does not: a producer leaving is *not* a failure of the
consumer; only the consumer's own faults are (a bus error, a contract violation, offline past
a deadline). Consumers decide what a lost source means for them (``motor_bus`` holds the arm,
``rtc_merger`` enters its fail-safe states); their supervisor is not involved.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

import anyio
from anyio import BrokenResourceError, EndOfStream, WouldBlock
from anyio.lowlevel import checkpoint

__all__ = ["RETRY_S", "SourceChange", "SourceEvent", "WatchedInput"]

T = TypeVar("T")

RETRY_S: Final = 0.1
"""Poll period of an ended input (EndOfStream) for a new incarnation of its producer: a
restarted actor's first message reaches the consumer at most this late (one tick at 10 Hz)."""


class SourceEvent(enum.Enum):
    """What happened to an input's producer."""

    LOST = "lost"
    """The producer vanished (``BrokenResourceError``) or ended (``EndOfStream``)."""
    BACK = "back"
    """The producer is present again (a live sender was seen, or an item arrived)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceChange:
    """A producer of ``input`` left or came back (returned in place of an item)."""

    input: str
    """The input's name."""
    event: SourceEvent
    """Lost or back."""
    reason: str
    """``vanished`` | ``ended`` (LOST); ``present`` | ``delivered`` (BACK)."""


class WatchedInput(Generic[T]):
    """One receive port whose producer may come and go (module docstring).

    ``receive()`` / ``receive_nowait()`` return either an item or a :class:`SourceChange`;
    iterate with ``async for``. ``lost`` tells whether the producer is currently away and
    ``losses`` how often it left.
    """

    def __init__(self, port: Any, name: str, *, retry_s: float = RETRY_S) -> None:
        self.port = port
        self.name = name
        self.retry_s = retry_s
        self.lost: str | None = None
        """``vanished`` or ``ended`` while the producer is away, else ``None``."""
        self.losses = 0
        """How many times the producer left."""
        self._pending: list[T] = []

    def _change(self, event: SourceEvent, reason: str) -> SourceChange:
        if event is SourceEvent.LOST:
            self.lost = reason
            self.losses += 1
        else:
            self.lost = None
        return SourceChange(input=self.name, event=event, reason=reason)

    def _arrived(self, item: T) -> T | SourceChange:
        if self.lost is None:
            return item
        self._pending.append(item)
        return self._change(SourceEvent.BACK, "delivered")

    def receive_nowait(self) -> T | SourceChange:
        """An item or a change, without waiting; ``WouldBlock`` when there is neither."""
        if self._pending:
            return self._pending.pop()
        try:
            item: T = self.port.receive_nowait()
        except BrokenResourceError:
            return self._change(SourceEvent.LOST, "vanished")
        except EndOfStream:
            if self.lost is not None:
                raise WouldBlock from None
            return self._change(SourceEvent.LOST, "ended")
        return self._arrived(item)

    async def receive(self) -> T | SourceChange:
        """The next item or change, waiting as long as needed (always a checkpoint)."""
        if self._pending:
            await checkpoint()
            return self._pending.pop()
        if self.lost == "vanished" and hasattr(self.port, "wait_for_sender"):
            await self.port.wait_for_sender()
            return self._change(SourceEvent.BACK, "present")
        while True:
            try:
                item: T = await self.port.receive()
            except BrokenResourceError:
                return self._change(SourceEvent.LOST, "vanished")
            except EndOfStream:
                if self.lost is None:
                    return self._change(SourceEvent.LOST, "ended")
                await anyio.sleep(self.retry_s)
                continue
            return self._arrived(item)

    async def wait_present(self) -> None:
        """Wait until a producer is present (at once for ports without presence)."""
        wait = getattr(self.port, "wait_for_sender", None)
        if wait is None:
            await checkpoint()
            return
        await wait()

    def __aiter__(self) -> WatchedInput[T]:
        return self

    async def __anext__(self) -> T | SourceChange:
        return await self.receive()
