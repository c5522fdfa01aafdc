"""Actor-facing ports: declarations (:class:`Input`, :class:`Output`) and the fan-out output port.

An actor's output may feed any number of inputs, each through its own channel with its own
capacity and policy (dora's "one output, many subscribers"). :class:`OutputPort` is what the
actor sends on: it forwards every item to each channel in declaration order.

Decisions:

* A downstream input whose receiver is closed for good (a ``temporary`` actor that ended, a
  dropped subscriber) must not crash the producer: the branch is removed and later items for it
  are counted as ``dropped["receiver_closed"]``. One dead consumer never stalls or kills a camera.
* With several ``block`` branches the items are delivered branch by branch; the slowest branch
  paces the producer (that is what ``block`` asks for).
* An output that feeds nothing counts its items as ``dropped["unconnected"]`` so dashboards show
  data going nowhere.
* Branches are any :class:`rtrun.abc.SendPort`: an in-process channel's send port or the send
  port of a channel crossing Zenoh. :class:`OutputPort` itself is a :class:`rtrun.abc.Sender`,
  not a full send port: it has no ``clone`` and its statistics cover every branch.
* :meth:`OutputPort.close` is not the end of the port: an actor that terminated (end-of-stream
  downstream) may be started again by its supervisor (a group restart, a restarted nested
  supervisor). Each branch may carry a *reopen* factory from the launcher, and the actor's next
  start replaces every closed branch by a fresh send port into the same input (see
  :meth:`OutputPort._reopen`). Outputs thus follow the actor's lifetime in its supervisor.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Generic, TypeVar, final

from anyio import BrokenResourceError
from anyio.lowlevel import checkpoint

from ._channel import ChannelStatistics
from .abc import SendPort

__all__ = ["Input", "Output", "OutputPort", "OutputStatistics"]

T = TypeVar("T")


@final
@dataclass(frozen=True, slots=True)
class Input:
    """Declares an actor input: its message type and whether the graph must connect it."""

    type: type[Any]
    """Accepted message class; ``rtrun.Message`` accepts every message type."""
    required: bool = True
    """Whether ``rtrun check`` rejects a graph that leaves this input unconnected."""
    doc: str = ""
    """One line for ``rtrun kinds`` and the README tables."""


@final
@dataclass(frozen=True, slots=True)
class Output:
    """Declares an actor output and the message type it carries."""

    type: type[Any]
    """Message class sent on this output."""
    doc: str = ""
    """One line for ``rtrun kinds`` and the README tables."""


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class OutputStatistics:
    """Counters of one output port and of every channel it feeds."""

    sent: int
    """Items the actor sent on this output."""
    dropped: Mapping[str, int]
    """Items not delivered to some branch, per reason (``unconnected``, ``receiver_closed``)."""
    branches: Sequence[ChannelStatistics]
    """Statistics of each downstream channel, in connection order."""


@final
class OutputPort(Generic[T]):
    """The sending side an actor sees for one declared output (fans out to every consumer).

    Implements :class:`rtrun.abc.Sender`; each branch is a :class:`rtrun.abc.SendPort`.
    """

    __slots__ = (
        "_all",
        "_branches",
        "_closed",
        "_closed_branches",
        "_dropped",
        "_reopeners",
        "_sent",
        "name",
    )

    def __init__(self, name: str, branches: Sequence[SendPort[T]]) -> None:
        self.name = name
        self._all = tuple(branches)
        self._reopeners: tuple[Callable[[], SendPort[T]] | None, ...] = (None,) * len(self._all)
        self._branches = list(branches)
        self._closed = False
        self._closed_branches = 0
        self._sent = 0
        self._dropped: dict[str, int] = {}

    def _count_drop(self, reason: str, count: int = 1) -> None:
        self._dropped[reason] = self._dropped.get(reason, 0) + count

    async def send(self, item: T) -> None:
        """Send ``item`` to every connected input. Always a checkpoint; waits only on ``block`` branches."""
        self._sent += 1
        if self._closed_branches:
            self._count_drop("receiver_closed", self._closed_branches)
        branches = self._branches
        if len(branches) == 1:  # fast path: one consumer (the common case)
            try:
                await branches[0].send(item)
            except BrokenResourceError:
                self._remove(branches[0])
            return
        if not branches:
            if not self._closed_branches:
                self._count_drop("unconnected")
            await checkpoint()
            return
        for branch in list(branches):
            try:
                await branch.send(item)
            except BrokenResourceError:
                self._remove(branch)

    def send_nowait(self, item: T) -> None:
        """Send without waiting; a full ``block`` branch raises ``WouldBlock`` (earlier branches got it)."""
        self._sent += 1
        if self._closed_branches:
            self._count_drop("receiver_closed", self._closed_branches)
        if not self._branches:
            self._count_drop("unconnected")
        for branch in list(self._branches):
            try:
                branch.send_nowait(item)
            except BrokenResourceError:
                self._remove(branch)

    def _remove(self, branch: SendPort[T]) -> None:
        self._branches.remove(branch)
        self._closed_branches += 1
        self._count_drop("receiver_closed")

    def _add_branch(self, branch: SendPort[T], reopen: Callable[[], SendPort[T]] | None = None) -> None:
        """Connect one more consumer (the launcher wires edges; ``graph.receiver`` adds taps).

        ``reopen`` makes a new send port into the same consumer, for :meth:`_reopen`.
        """
        self._all = (*self._all, branch)
        self._reopeners = (*self._reopeners, reopen)
        self._branches.append(branch)

    def close(self) -> None:
        """Close every branch (the launcher calls this when the actor terminates: end-of-stream)."""
        self._closed = True
        for branch in self._all:
            branch.close()

    def _reopen(self) -> None:
        """The actor starts again after :meth:`close`: replace each closed branch that has a reopen
        factory by a fresh send port (the others stay gone, counted as ``receiver_closed``)."""
        if not self._closed:
            return
        self._closed = False
        self._all = tuple(
            make() if branch.closed and make is not None else branch
            for branch, make in zip(self._all, self._reopeners, strict=True)
        )
        self._branches = [branch for branch in self._all if not branch.closed]
        self._closed_branches = len(self._all) - len(self._branches)

    @property
    def connected(self) -> int:
        """Number of downstream inputs still receiving."""
        return len(self._branches)

    def statistics(self) -> OutputStatistics:
        """Snapshot of this output and of its live downstream channels."""
        return OutputStatistics(
            sent=self._sent,
            dropped=MappingProxyType(dict(self._dropped)),
            branches=tuple(b.statistics() for b in self._branches),
        )
