"""The Zenoh channel protocol without Zenoh: the receiving side's epochs, sequence gaps and
end-of-stream, and the sending side's credit ledger, as pure state machines (sans-io, in the
manner of h11).

Theory of operation
-------------------
:class:`InboundStream` is what one receiving port knows about the stream it follows (design:
:mod:`rtrun._zenoh_channel`): which sender *incarnation* (epoch) it follows, which epochs are
live (their liveliness token is declared) or retired, the next sequence id it expects, and
whether that sender ended (END_OF_STREAM, with the number of DATA messages it sent). It has no
lock, no clock and no I/O: the receiving port's core (:mod:`rtrun._zenoh_receiver_core`) feeds
it the events it sees -- a message's ``(epoch, sequence id)``, an undecodable body, a token
appearing or vanishing, END_OF_STREAM, "is the end reached *now*?" -- under its bridge lock, and
applies the answers to its buffer and counters. The tests drive it directly, synchronously.

Answers are plain values: a drop reason (``None`` = accept), a number of messages lost in a
sequence gap, and whether the buffered items became *stale* (the followed sender was retired
without having ended: its items must be dropped as ``stale_epoch``).

Epoch table (``e`` is the event's epoch, ``cur`` the followed one)::

    event              condition                                   outcome
    data/EOS from e    e == cur                                    accept
                       e retired                                   drop: stale_epoch
                       e live, or nobody followed, or cur not live adopt e, accept
                       otherwise                                   drop: unknown_epoch
    token e appears    e == cur                                    (live again)
                       e retired and cur live (superseded)         stays retired
                       otherwise                                   adopt e (a retired e resumes)
    token e vanishes   e == cur and no END_OF_STREAM               broken once; follow nobody

Adopting ``e`` retires ``cur`` (remembered, at most :data:`DEAD_EPOCHS_KEPT`), restarts the
sequence and forgets the end of stream; the buffered items are stale unless ``cur`` had ended.

Credits (sending side). :class:`OutboundCredits` is what a sender knows of its receiving ports:
one :class:`Grant` per live receiver (its latest CREDIT: ``consumed``, ``window``, waiting tasks,
open clones), and the receivers closed on purpose (RECEIVER_CLOSED). A ``block`` sender may
publish id ``s`` only while ``s < consumed + window`` for every live receiver; grants are
numbered, so an older one arriving late is ignored; a credit that names another epoch (the
receiver still follows a previous sender) or no data yet (``FRESH``) grants from the sender's
next id. Once every receiver closed on purpose, and none is left, sending is *broken*; a
receiver that merely vanished does not break the sender (its host will be restarted).

Sequence ids within an epoch arrive in order (one publisher, one priority lane): an older id is
``stale_sequence``; a jump forward counts the skipped ids as lost (``sequence_gap``), except ids
already counted as undecodable bodies; an implausible jump (> :data:`MAX_SEQUENCE_JUMP`) is
dropped as ``header_sequence_jump`` unless the next id continues from it (resynchronize).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, NamedTuple

__all__ = [
    "BAD_IDS_KEPT",
    "DEAD_EPOCHS_KEPT",
    "EOS_GRACE_S",
    "FRESH",
    "MAX_SEQUENCE_JUMP",
    "Admission",
    "Grant",
    "InboundStream",
    "OutboundCredits",
]

MAX_SEQUENCE_JUMP: Final = 1 << 24
"""A forward jump larger than this within one epoch is implausible (16 M lost samples without a
lease expiry): the sample is dropped as ``header_sequence_jump`` unless the next one continues
from it (then the receiver resynchronizes). One forged sample cannot wedge a channel."""
BAD_IDS_KEPT: Final = 64
"""Ids of the live epoch's undecodable bodies remembered, so a gap over them is not counted
twice (``body_*`` and ``sequence_gap``); a bound, because forged samples choose their ids."""
DEAD_EPOCHS_KEPT: Final = 16
"""Retired epochs remembered per receiver (restarts within one run; far more than plausible)."""
FRESH: Final = 0xFFFF_FFFF_FFFF_FFFF
"""CREDIT ``consumed`` of a receiver that has seen no data of the epoch it follows yet."""
EOS_GRACE_S: Final = 1.0
"""After END_OF_STREAM, how long to wait for DATA still in flight before counting it lost. Data
and END_OF_STREAM share a lane, so in practice nothing is waited for; 1 s covers retransmission."""


class Admission(NamedTuple):
    """The answer to one arriving message (:meth:`InboundStream.admit`)."""

    drop: str | None
    """Drop reason, or ``None``: accept the message."""
    lost: int
    """Messages the sequence skipped (count them as ``sequence_gap``)."""
    stale_buffer: bool
    """A new epoch was adopted and the retired sender had not ended: drop the buffered items."""


@dataclass(eq=False, slots=True)
class InboundStream:
    """One receiving port's view of the stream it follows (see the module docstring)."""

    epoch: int | None = None
    """The sender incarnation followed (``None``: none yet, or it vanished)."""
    expected: int | None = None
    """The next sequence id expected from it (``None``: none seen yet)."""
    jump_to: int | None = None
    """After an implausible jump: the id that would confirm it."""
    live: set[int] = field(default_factory=set)
    """Epochs whose liveliness token is declared."""
    dead: deque[int] = field(default_factory=lambda: deque(maxlen=DEAD_EPOCHS_KEPT))
    """Retired epochs (vanished or superseded); their data is ``stale_epoch``."""
    bad_ids: deque[int] = field(default_factory=lambda: deque(maxlen=BAD_IDS_KEPT))
    """Ids of the followed epoch whose bodies were undecodable (already counted)."""
    eos: int | None = None
    """END_OF_STREAM of the followed sender: the number of DATA messages it sent."""
    eos_deadline: float | None = None
    """When to stop waiting for data still in flight after END_OF_STREAM (runtime clock)."""

    @property
    def following_live(self) -> bool:
        """Whether the followed sender's token is declared."""
        return self.epoch is not None and self.epoch in self.live

    @property
    def ended(self) -> bool:
        """Whether END_OF_STREAM arrived and every message it announced was accounted for."""
        return self.eos is not None and (self.expected is None or self.expected >= self.eos)

    def admit(self, epoch: int, seq: int) -> Admission:
        """A DATA message ``(epoch, seq)`` arrived: accept it or say why not."""
        drop, stale = self._accept_epoch(epoch)
        if drop is not None:
            return Admission(drop, 0, stale)
        drop, lost = self._check_sequence(seq)
        return Admission(drop, lost, stale)

    def bad_body(self, epoch: int, seq: int) -> None:
        """An undecodable body claiming ``(epoch, seq)`` (counted by the caller): remember its
        id if it claims the followed epoch, so a later gap over it does not count it again.
        The sequence never moves for it (garbage must not make the real message look stale)."""
        if epoch == self.epoch:
            self.bad_ids.append(seq)

    def end_of_stream(self, epoch: int, count: int) -> tuple[bool, bool]:
        """END_OF_STREAM from ``epoch`` after ``count`` DATA messages: ``(accepted, stale_buffer)``
        (acknowledge it only if accepted)."""
        drop, stale = self._accept_epoch(epoch)
        if drop is None:
            self.eos = count
        return drop is None, stale

    def end_reached(self, now: float) -> tuple[bool, int]:
        """After END_OF_STREAM with nothing buffered: ``(reached, lost)``. Not reached while
        data may still be in flight, for at most :data:`EOS_GRACE_S` from the first call; then
        what never came is ``lost`` (count it as ``sequence_gap``; undecodable bodies among
        those ids were counted already)."""
        assert self.eos is not None
        if self.expected is None or self.expected >= self.eos:
            return True, 0
        if self.eos_deadline is None:
            self.eos_deadline = now + EOS_GRACE_S
            return False, 0
        if now < self.eos_deadline:
            return False, 0
        lost = self.eos - self.expected - self._bad_between(self.expected, self.eos)
        self.expected = self.eos
        return True, lost

    def _bad_between(self, start: int, stop: int) -> int:
        """Undecodable bodies already counted among ids ``start..stop-1`` (not lost twice)."""
        return sum(1 for bad in set(self.bad_ids) if start <= bad < stop)

    def grant(self, buffered: Iterable[tuple[int, int]], room: int) -> tuple[int, int]:
        """The ``(window, consumed)`` of a CREDIT: ``buffered`` are the ``(epoch, seq)`` of the
        items in the buffer, oldest first; ``room`` is the capacity plus the waiting receives.
        ``consumed`` is the lowest id of the followed sender possibly still buffered (``FRESH``
        before its first); items an ended previous sender left use up window (see ``_adopt``)."""
        consumed = FRESH if self.expected is None else self.expected
        carried = 0
        for epoch, seq in buffered:
            if epoch == self.epoch:
                consumed = seq
                break
            carried += 1
        return max(0, room - carried), consumed

    def sender_appeared(self, epoch: int) -> bool:
        """A sender token appeared; True if the buffered items became stale."""
        self.live.add(epoch)
        if epoch == self.epoch:
            return False
        if epoch in self.dead:  # a partition healed: same sender, same epoch -> resume ...
            if self.following_live:
                return False  # ... unless a newer sender is live: a superseded one stays retired
            self.dead.remove(epoch)
        return self._adopt(epoch)

    def sender_vanished(self, epoch: int) -> bool:
        """A sender token vanished; True if it was the followed sender and it had not ended:
        the far side is gone (drop the buffer as ``peer_vanished``, break the next receive)."""
        self.live.discard(epoch)
        if epoch != self.epoch or self.eos is not None:
            return False
        self.dead.append(epoch)
        self.epoch = self.expected = None
        return True

    def _accept_epoch(self, epoch: int) -> tuple[str | None, bool]:
        if epoch == self.epoch:
            return None, False
        if epoch in self.dead:
            return "stale_epoch", False
        if epoch in self.live or not self.following_live:
            return None, self._adopt(epoch)
        return "unknown_epoch", False

    def _adopt(self, epoch: int) -> bool:
        """Follow ``epoch``; True if the buffered items are stale (the retired sender had not
        ended: an ended one's items were sent for good and stay, delivered first)."""
        if self.epoch is not None and self.epoch not in self.dead:
            self.dead.append(self.epoch)
        stale = self.eos is None
        self.epoch, self.expected, self.jump_to = epoch, None, None
        self.bad_ids.clear()
        self.eos = self.eos_deadline = None
        return stale

    def _check_sequence(self, seq: int) -> tuple[str | None, int]:
        expected = self.expected
        lost = 0
        if expected is not None:
            if seq < expected:
                return "stale_sequence", 0
            if seq - expected > MAX_SEQUENCE_JUMP and seq != self.jump_to:
                self.jump_to = seq + 1
                return "header_sequence_jump", 0
            if seq != self.jump_to and seq > expected:  # (ids counted as bad bodies: not twice)
                lost = seq - expected - self._bad_between(expected, seq)
        self.expected, self.jump_to = seq + 1, None
        return None, lost


@dataclass(eq=False, slots=True)
class Grant:
    """One live receiving port, as its latest credit describes it."""

    consumed: int | None = None
    """Every id below it was consumed (``None``: no credit yet)."""
    window: int = 0
    """Its capacity plus its waiting receives."""
    counter: int = -1
    """The latest credit's number (-1: none yet)."""
    waiting: int = 0
    """Tasks waiting in its ``receive``."""
    open_ports: int = 1
    """Its open clones (a live token without a credit yet: one port)."""


@dataclass(eq=False, slots=True)
class OutboundCredits:
    """A sender's view of its receivers (see "Credits" in the module docstring)."""

    epoch: int
    """The sender's own epoch."""
    receivers: dict[int, Grant] = field(default_factory=dict)
    """Live receiving ports by receiver id."""
    closed: set[int] = field(default_factory=set)
    """Receivers closed on purpose (RECEIVER_CLOSED): never live again."""

    @property
    def broken(self) -> bool:
        """Every receiver closed on purpose and none is left: ``send`` raises."""
        return bool(self.closed) and not self.receivers

    def receiver_token(self, rid: int, alive: bool) -> None:
        """A receiver's liveliness token appeared or vanished."""
        if not alive:
            self.receivers.pop(rid, None)
        elif rid not in self.closed:
            self.receivers.setdefault(rid, Grant())

    def receiver_closed(self, rid: int) -> None:
        """RECEIVER_CLOSED from ``rid``."""
        self.receivers.pop(rid, None)
        self.closed.add(rid)

    def credit(
        self, rid: int, number: int, epoch: int, fields: tuple[int, int, int, int], next_seq: int
    ) -> bool:
        """CREDIT number ``number`` from ``rid`` following ``epoch``, with ``fields`` =
        ``(window, consumed, waiting, open_ports)``; ``next_seq`` is the sender's next id.
        Returns True if it was that receiver's first credit."""
        if rid in self.closed:
            return False
        grant = self.receivers.setdefault(rid, Grant())
        if number <= grant.counter:
            return False  # an older grant overtaken by a newer one
        first = grant.counter < 0
        window, consumed, grant.waiting, grant.open_ports = fields
        grant.counter, grant.window = number, window
        if consumed == FRESH or epoch != self.epoch:
            grant.consumed = next_seq if grant.consumed is None else grant.consumed
        else:
            grant.consumed = max(consumed, grant.consumed or 0)
        return first

    def may_send(self, seq: int) -> bool:
        """``block``: whether id ``seq`` is within every live receiver's window."""
        grants = self.receivers.values()
        return bool(grants) and all(g.consumed is not None and seq < g.consumed + g.window for g in grants)

    def view(self, *, block: bool) -> tuple[int, int | None, int, int]:
        """For ``statistics()``: ``(capacity, consumed, open receive ports, waiting receives)``;
        ``consumed`` (the lowest acknowledged) only on ``block``, else ``None``."""
        grants = list(self.receivers.values())
        credited = [g for g in grants if g.consumed is not None]
        capacity = min((g.window - g.waiting for g in credited), default=0)
        consumed = min((g.consumed for g in credited if g.consumed is not None), default=None)
        waiting = sum(g.waiting for g in grants) if block else 0
        return capacity, consumed if block else None, sum(g.open_ports for g in grants), waiting
