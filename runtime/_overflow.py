"""The bounded-buffer policy engine every transport uses: one overflow decision, one set of drop reasons.

Theory of operation
-------------------
A channel's buffer is a ``deque`` bounded by its capacity; what happens when an item arrives at
a full buffer is the channel's *overflow policy* (:data:`OverflowPolicy`; named so it is never
confused with a robot's control policy):

==============  ==============================================  ==========================
policy          full buffer, new item                           drop reason
==============  ==============================================  ==========================
``block``       refused: ``WouldBlock`` (the caller waits or    -- (see below)
                counts a protocol violation)
``drop_oldest`` the oldest buffered item is discarded,          ``overflow_oldest``
                the new one appended
``drop_newest`` the new item is discarded                       ``overflow_newest``
``latest``      the unread value is replaced (capacity 1)       ``superseded``
==============  ==============================================  ==========================

:func:`offer` applies that table to one deque and returns the drop reason (or ``None``); it has
no locks, no clock and no I/O, so every transport calls it under its own synchronization: the
in-process channel (``rtrun._channel``) on the event loop, the Zenoh receiving port
(``rtrun._zenoh_receiver_core``) and the thread hand-off (``rtrun._bridge.Handoff``) under their
bridge lock on Zenoh threads. What ``block`` means at a full buffer is the transport's: in-process
``send`` waits for room; a Zenoh receiver can only be full under ``block`` when a sender ignored
its credits, and counts the item as ``credit_violation``.

Drop reasons are counted per reason in ``ChannelStatistics.dropped`` by :func:`count_drop`; items
discarded wholesale (the receiver closed, the far side vanished, a retired epoch) go through
:func:`discard_all`. So on every transport ``sent == received + queued + sum(dropped)``.
"""

from __future__ import annotations

from collections import deque
from typing import Final, Literal, TypeVar, get_args

from anyio import WouldBlock

from ._errors import ChannelError

__all__ = [
    "CREDIT_VIOLATION",
    "OVERFLOW_NEWEST",
    "OVERFLOW_OLDEST",
    "OVERFLOW_POLICIES",
    "RECEIVER_CLOSED",
    "SUPERSEDED",
    "OverflowPolicy",
    "check_overflow",
    "count_drop",
    "discard_all",
    "offer",
    "overflow_reason",
]

T = TypeVar("T")

OverflowPolicy = Literal["block", "drop_oldest", "drop_newest", "latest"]
"""What a channel does when an item arrives at a full buffer (see the module docstring)."""

OVERFLOW_POLICIES: Final[tuple[str, ...]] = get_args(OverflowPolicy)
"""Every overflow policy, in declaration order."""

OVERFLOW_OLDEST: Final = "overflow_oldest"
"""``drop_oldest``: the oldest buffered item made room for a new one."""
OVERFLOW_NEWEST: Final = "overflow_newest"
"""``drop_newest``: the new item found the buffer full."""
SUPERSEDED: Final = "superseded"
"""``latest``: an unread value was replaced by a newer one."""
RECEIVER_CLOSED: Final = "receiver_closed"
"""Buffered (or arriving) items discarded because every receiving port is closed."""
CREDIT_VIOLATION: Final = "credit_violation"
"""``block`` across hosts: an item beyond the window the receiver granted (a protocol breach)."""

_REASONS: Final[dict[str, str]] = {
    "drop_oldest": OVERFLOW_OLDEST,
    "drop_newest": OVERFLOW_NEWEST,
    "latest": SUPERSEDED,
}


def check_overflow(capacity: int, policy: str) -> None:
    """Raise :class:`ChannelError` unless ``capacity``/``policy`` is a valid channel buffer.

    ``capacity`` is an integer >= 0; 0 (a rendezvous) only with ``block``, because the other
    policies never wait; ``latest`` is a one-slot mailbox (capacity 1).
    """
    if policy not in OVERFLOW_POLICIES:
        raise ChannelError(f"unknown channel policy {policy!r}; expected one of {OVERFLOW_POLICIES}")
    if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 0:
        raise ChannelError(f"channel capacity must be an integer >= 0, got {capacity!r}")
    if policy == "latest" and capacity != 1:
        raise ChannelError(f"policy 'latest' is a one-slot mailbox: capacity must be 1, got {capacity}")
    if policy in ("drop_oldest", "drop_newest") and capacity < 1:
        raise ChannelError(f"policy {policy!r} needs capacity >= 1 (it never waits), got {capacity}")


def overflow_reason(policy: str) -> str | None:
    """The drop reason ``policy`` records at a full buffer (``None`` for ``block``)."""
    return _REASONS.get(policy)


def offer(buffer: deque[T], item: T, bound: int, policy: str) -> str | None:
    """Append ``item`` to ``buffer`` (at most ``bound`` items; >= 1 unless ``block``) per ``policy``.

    Returns ``None`` when it was appended to a buffer with room; otherwise the drop reason:
    ``overflow_oldest``/``superseded`` (appended, the oldest item was discarded) or
    ``overflow_newest`` (``item`` itself was discarded; the buffer is unchanged).

    Raises:
        WouldBlock: ``block`` and the buffer is full (``buffer`` is unchanged).
    """
    if len(buffer) < bound:
        buffer.append(item)
        return None
    reason = _REASONS.get(policy)
    if reason is None:
        raise WouldBlock
    if reason != OVERFLOW_NEWEST:
        buffer.popleft()
        buffer.append(item)
    return reason


def count_drop(dropped: dict[str, int], reason: str, count: int = 1) -> None:
    """Add ``count`` drops for ``reason`` to a ``ChannelStatistics.dropped``-style counter."""
    dropped[reason] = dropped.get(reason, 0) + count


def discard_all(buffer: deque[T], dropped: dict[str, int], reason: str) -> int:
    """Empty ``buffer``, counting every item as dropped for ``reason``; return how many."""
    count = len(buffer)
    if count:
        count_drop(dropped, reason, count)
        buffer.clear()
    return count
