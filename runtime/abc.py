"""The port contract: the protocols every rtrun transport's ports implement (``rtrun.abc``).

An actor never needs to know whether a port is an in-process channel end
(:func:`rtrun.open_channel`) or one end of a channel crossing Zenoh: both implement the
protocols below, and :meth:`rtrun.ActorContext.input` is typed with them. Code that accepts
"some send port" or "some receive port" (a tap, a bridge, a test helper, an embedding app)
should annotate with these protocols too, never with a concrete port class or ``Any``.

Like anyio's ``abc`` package these are *interfaces*, not base classes: the concrete ports do not
inherit from them (they are ``@final`` classes without a public constructor). The protocols are
``runtime_checkable``, so ``isinstance(port, rtrun.abc.ReceivePort)`` works; it only checks that
the members exist. ``tests/runtime/test_abc.py`` checks the signatures of every implementation.

The contract (``STYLE.md`` rules 3 and 4; anyio ``streams/memory.py``):

* every ``async`` method is a checkpoint; non-blocking twins are ``*_nowait`` and raise
  :class:`anyio.WouldBlock`;
* ``close()`` is synchronous and idempotent, ``aclose()`` is its awaitable twin (a Zenoh send
  port's last clone publishes end-of-stream reliably there); both context managers close;
* :class:`anyio.ClosedResourceError`: *this* port was closed; :class:`anyio.BrokenResourceError`:
  the far side is gone; :class:`anyio.EndOfStream`: every sender clone closed and everything was
  delivered (``async for`` then ends);
* ``clone()`` makes another port on the same channel: fan-in for send ports, competing
  consumers for receive ports; end-of-stream / broken follow the *last* clone's close;
* ``statistics()`` returns a :class:`rtrun.ChannelStatistics` with the same fields for every
  transport (the Zenoh ends report their side's view).

Decisions:

* :class:`Sender` is the narrow part of :class:`SendPort` that an actor's *output* offers:
  ``send`` and ``send_nowait``. :meth:`rtrun.ActorContext.output` returns an
  :class:`rtrun.OutputPort`, which is a :class:`Sender` but not a :class:`SendPort`: it fans out
  to several channels, so it has no ``clone`` and its ``statistics()`` covers every branch
  (:class:`rtrun.OutputStatistics`); the launcher, not the actor, closes it.
* Transport-specific extras (``wait_for_receiver``, ``set_episode``, ``last_header``, ``key``
  on the Zenoh ends) are not part of the contract.
* ``T`` is contravariant for senders and covariant for receivers (a ``ReceivePort[Frame]`` is a
  ``ReceivePort[Message]``), as type checkers require of protocols.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import TracebackType
from typing import Protocol, Self, TypeVar, runtime_checkable

from ._channel import ChannelStatistics

__all__ = ["ReceivePort", "SendPort", "Sender"]

T_contra = TypeVar("T_contra", contravariant=True)
T_co = TypeVar("T_co", covariant=True)


@runtime_checkable
class Sender(Protocol[T_contra]):
    """Something an actor sends items on: a channel's send port or an actor output."""

    async def send(self, item: T_contra) -> None:
        """Send ``item``, waiting for room under the ``block`` policy. Always a checkpoint.

        If it raises, the item was not sent.

        Raises:
            ClosedResourceError: this port was closed.
            BrokenResourceError: every receiver is gone (an output drops such branches instead).
        """
        ...

    def send_nowait(self, item: T_contra) -> None:
        """Send ``item`` without waiting.

        Raises:
            WouldBlock: ``block`` policy and no room right now.
            ClosedResourceError: this port was closed.
            BrokenResourceError: every receiver is gone.
        """
        ...


@runtime_checkable
class _Closable(Protocol):
    """The lifecycle shared by both ends (``rtrun._channel.PortLifecycle``)."""

    @property
    def closed(self) -> bool:
        """Whether this port clone has been closed."""
        ...

    def close(self) -> None:
        """Close this clone; idempotent, never waits."""
        ...

    async def aclose(self) -> None:
        """Close this clone (a checkpoint); the same effect as :meth:`close`, plus what the
        transport needs to wait for (a Zenoh sender's reliable end-of-stream)."""
        ...

    def statistics(self) -> ChannelStatistics:
        """A snapshot of the channel's counters, as seen from this end."""
        ...

    def __enter__(self) -> Self:
        """``with port:`` closes it on exit."""
        ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close the port."""
        ...

    async def __aenter__(self) -> Self:
        """``async with port:`` closes it on exit."""
        ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close the port."""
        ...


@runtime_checkable
class SendPort(Sender[T_contra], _Closable, Protocol[T_contra]):
    """The sending end of a channel, in-process or across Zenoh."""

    def clone(self) -> SendPort[T_contra]:
        """Another send port on the same channel (fan-in); receivers see end-of-stream once every
        clone is closed.

        Raises:
            ClosedResourceError: this port was closed.
        """
        ...


@runtime_checkable
class ReceivePort(_Closable, Protocol[T_co]):
    """The receiving end of a channel, in-process or across Zenoh; ``async for`` iterates it
    until end-of-stream."""

    async def receive(self) -> T_co:
        """The next item, waiting if needed. Always a checkpoint.

        Raises:
            ClosedResourceError: this port was closed.
            EndOfStream: every sender closed and everything was delivered.
            BrokenResourceError: the sender vanished (a Zenoh peer gone without closing).
        """
        ...

    def receive_nowait(self) -> T_co:
        """The next item without waiting.

        Raises:
            WouldBlock: nothing available right now.
            ClosedResourceError: this port was closed.
            EndOfStream: every sender closed and everything was delivered.
            BrokenResourceError: the sender vanished.
        """
        ...

    def clone(self) -> ReceivePort[T_co]:
        """Another receive port on the same channel (competing consumers); senders see
        ``BrokenResourceError`` once every clone is closed.

        Raises:
            ClosedResourceError: this port was closed.
        """
        ...

    def __aiter__(self) -> AsyncIterator[T_co]:
        """The port itself: ``async for item in port`` receives until end-of-stream."""
        ...

    async def __anext__(self) -> T_co:
        """:meth:`receive`, with end-of-stream ending the iteration."""
        ...
