"""`RequestPlanner`: the sans-io core of the ``rtc_merger`` actor.

Theory of operation
-------------------
The planner decides *when* to ask the policy for a chunk and *whether* a reply may be merged.
It owns the latency tracker, the request sequence number, the episode and the session epoch;
it never touches the queue itself — it reads :class:`QueueSnapshot` values (from an
:class:`ActionSource`, in-process or via a channel) and emits :class:`MergeCommand` values for it.

Request cycle (lerobot-rtc.md §9.4, with the §12 fixes)::

    poll(now, snapshot) ──► InferenceRequest(seq, episode, epoch, delay, prefixes, idx_before)
          │  gates: not paused · nothing in flight (or it timed out) · the snapshot belongs to
          │  this episode · the snapshot already reflects our last merge · and
          │  queued_steps·dt <= buffer_time_s (self-clocking: at 30 fps and 0.5 s, <= 15 steps)
          ▼
    on_reply(now, seq, episode, epoch, chunks) ──► MergeCommand | DroppedReply(reason)
             filters, first failure wins: old_epoch · old_episode · no_request (nothing in
             flight: it timed out or was already answered) · not_latest (seq differs)
             then L = now - t_sent, real_delay = ceil(L/dt), tracker.add(L)

* **One request in flight.** A new request is only planned once the previous one was answered,
  timed out (``request_timeout_s``) or abandoned by :meth:`reset`/:meth:`new_epoch`.
* **Sent vs trim delay** (§4): the request carries ``ceil(tracker.max()/dt)`` (all-time max,
  pessimistic); the merge trims ``ceil(L/dt)`` of *this* cycle. The tracker survives resets.
* **Merge acknowledgement.** After a reply is accepted the planner waits for a snapshot whose
  ``last_merge_seq`` shows the merge happened before it plans again, so a queue status that
  predates the merge cannot trigger a duplicate request; a lost merge command unblocks after
  ``request_timeout_s``.
* **Episode start.** ``episode_start`` is true on every request of an episode until its first
  accepted reply (tracked explicitly — a staleness clear does not set it, §12.3).
* RTC off: no prefixes and delay 0; the queue appends and ignores the trim delay.

Times are the caller's clock (``anyio.current_time()``); ``t_sent`` never leaves this actor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._rtc_core import (
    DEFAULT_LATENCY_WINDOW,
    LatencyTracker,
    RTCError,
    inference_delay_steps,
    trim_steps,
)
from ._rtc_source import MergeCommand, QueueSnapshot

__all__ = [
    "DROP_REASONS",
    "DroppedReply",
    "InferenceRequest",
    "PlannerConfig",
    "PlannerStatistics",
    "RequestPlanner",
]

DROP_REASONS: tuple[str, ...] = ("old_epoch", "old_episode", "no_request", "not_latest")
"""Reasons a reply is dropped, in the order they are checked."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PlannerConfig:
    """Parameters of a :class:`RequestPlanner` (defaults: LeRobot remote client, §9.1)."""

    fps: float = 30.0
    """Policy action rate; ``dt = 1/fps`` converts latencies to steps."""
    buffer_time_s: float = 0.5
    """Request when the queued playback ``queued_steps·dt`` is at most this long."""
    rtc_enabled: bool = True
    """Send prefixes and the inference delay (replace merge); False: append merge."""
    prefix_rows: int = 10
    """Rows of left-over sent as the prefix (the policy's execution horizon ``H``)."""
    request_timeout_s: float = 5.0
    """A request unanswered this long is abandoned (counted) so a new one can go out."""
    latency_window: int = DEFAULT_LATENCY_WINDOW
    """Latency tracker window (samples)."""
    clamp_trim_to_consumed: bool = False
    """Opt-in first-chunk over-trim fix (§12.6); off = LeRobot parity."""

    def __post_init__(self) -> None:
        if not self.fps > 0:
            raise RTCError(f"fps must be > 0, got {self.fps}")
        if self.buffer_time_s < 0:
            raise RTCError(f"buffer_time_s must be >= 0, got {self.buffer_time_s}")
        if self.prefix_rows < 0:
            raise RTCError(f"prefix_rows must be >= 0, got {self.prefix_rows}")
        if not self.request_timeout_s > 0:
            raise RTCError(f"request_timeout_s must be > 0, got {self.request_timeout_s}")

    @property
    def dt(self) -> float:
        """Seconds per policy step."""
        return 1.0 / self.fps


@dataclass(frozen=True, slots=True, kw_only=True)
class InferenceRequest:
    """Everything the policy worker needs besides the observation."""

    seq: int
    """Per-planner request number (starts at 1), echoed by the reply."""
    episode: int
    """Episode id, echoed by the reply."""
    epoch: int
    """Session epoch (bumped on reconnect), echoed by the reply."""
    inference_delay: int
    """Sent delay ``ceil(tracker.max()/dt)`` (0 with RTC off or before any measurement)."""
    prefix_model: np.ndarray | None
    """Model-space left-over (at most ``prefix_rows`` rows), ``None`` when empty or RTC off."""
    prefix_robot: np.ndarray | None
    """Robot-space left-over (for relative-action re-anchoring), ``None`` likewise."""
    idx_before: int
    """Queue index at snapshot time (for the merge diagnostic)."""
    episode_start: bool
    """True until the first reply of this episode is accepted (reset per-episode state)."""
    t_sent: float
    """Local send time (this actor's clock; never sent to another host)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DroppedReply:
    """A reply that must not be merged, and why."""

    reason: str
    """One of :data:`DROP_REASONS`."""
    seq: int
    """Sequence number the reply carried."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PlannerStatistics:
    """Counters and latency figures of a :class:`RequestPlanner` (JSON-able)."""

    episode: int
    """Current episode."""
    epoch: int
    """Current session epoch."""
    requests: int
    """Requests planned."""
    merges: int
    """Replies accepted."""
    timeouts: int
    """Requests abandoned after ``request_timeout_s``."""
    dropped: dict[str, int]
    """Replies dropped, by reason."""
    in_flight: bool
    """Whether a request is awaiting its reply."""
    last_latency_s: float
    """Latency of the last accepted reply (0.0 before any)."""
    max_latency_s: float
    """All-time maximum latency (tracker)."""
    p95_latency_s: float
    """95th percentile over the tracker window."""
    inference_delay: int
    """Delay the next request would carry."""


class RequestPlanner:
    """Self-clocked, one-in-flight request planning and reply filtering (see module doc)."""

    def __init__(self, config: PlannerConfig | None = None) -> None:
        self.config = config or PlannerConfig()
        self.tracker = LatencyTracker(self.config.latency_window)
        self._seq = 0
        self._episode = 0
        self._epoch = 0
        self._paused = False
        self._in_flight: InferenceRequest | None = None
        self._unacked_seq = -1
        self._t_accepted = 0.0
        self._episode_start = True
        self._last_latency = 0.0
        self._counts = {"requests": 0, "merges": 0, "timeouts": 0}
        self._dropped: dict[str, int] = {}

    @property
    def episode(self) -> int:
        """Current episode id (starts at 0)."""
        return self._episode

    @property
    def epoch(self) -> int:
        """Current session epoch (starts at 0)."""
        return self._epoch

    @property
    def in_flight(self) -> InferenceRequest | None:
        """The request awaiting its reply, if any."""
        return self._in_flight

    # ------------------------------------------------------------------------------ planning

    def expire(self, now: float) -> bool:
        """Abandon the in-flight request if it is older than ``request_timeout_s``."""
        req = self._in_flight
        if req is None or now - req.t_sent < self.config.request_timeout_s:
            return False
        self._in_flight = None
        self._counts["timeouts"] += 1
        return True

    def wants_request(self, now: float, snapshot: QueueSnapshot) -> bool:
        """Whether a request should go out now given the queue ``snapshot`` (all gates)."""
        self.expire(now)
        if self._paused or self._in_flight is not None or snapshot.episode != self._episode:
            return False
        if not self._merge_acknowledged(now, snapshot):
            return False
        return not snapshot.queued_steps * self.config.dt > self.config.buffer_time_s

    def _merge_acknowledged(self, now: float, snapshot: QueueSnapshot) -> bool:
        if snapshot.last_merge_seq >= self._unacked_seq:
            return True
        return now - self._t_accepted >= self.config.request_timeout_s

    def start_request(self, now: float, snapshot: QueueSnapshot) -> InferenceRequest:
        """Plan a request from ``snapshot`` (call after :meth:`wants_request` said yes)."""
        if self._in_flight is not None:
            raise RTCError("one request in flight: the previous request is still unanswered")
        rtc, rows = self.config.rtc_enabled, self.config.prefix_rows
        self._seq += 1
        req = InferenceRequest(
            seq=self._seq,
            episode=self._episode,
            epoch=self._epoch,
            inference_delay=inference_delay_steps(self.tracker, self.config.dt) if rtc else 0,
            prefix_model=_rows(snapshot.prefix_model, rows) if rtc else None,
            prefix_robot=_rows(snapshot.prefix_robot, rows) if rtc else None,
            idx_before=snapshot.idx_before,
            episode_start=self._episode_start,
            t_sent=now,
        )
        self._in_flight = req
        self._counts["requests"] += 1
        return req

    def poll(self, now: float, snapshot: QueueSnapshot) -> InferenceRequest | None:
        """:meth:`wants_request` then :meth:`start_request`; ``None`` when nothing is due."""
        return self.start_request(now, snapshot) if self.wants_request(now, snapshot) else None

    # -------------------------------------------------------------------------------- replies

    def on_reply(
        self,
        now: float,
        *,
        seq: int,
        episode: int,
        epoch: int,
        chunk_model: np.ndarray,
        chunk_robot: np.ndarray,
    ) -> MergeCommand | DroppedReply:
        """Filter a reply; return the merge to apply or why it was dropped (counted)."""
        reason = self._drop_reason(seq, episode, epoch)
        if reason is not None:
            self._dropped[reason] = self._dropped.get(reason, 0) + 1
            return DroppedReply(reason=reason, seq=seq)
        req = self._in_flight
        assert req is not None  # guaranteed by _drop_reason
        latency = max(0.0, now - req.t_sent)
        self.tracker.add(latency)
        self._in_flight = None
        self._unacked_seq, self._t_accepted = seq, now
        self._episode_start = False
        self._last_latency = latency
        self._counts["merges"] += 1
        return MergeCommand(
            episode=episode,
            seq=seq,
            chunk_model=chunk_model,
            chunk_robot=chunk_robot,
            real_delay=trim_steps(latency, self.config.dt),
            idx_before=req.idx_before,
            latency_s=latency,
            clamp_to_consumed=self.config.clamp_trim_to_consumed,
        )

    def _drop_reason(self, seq: int, episode: int, epoch: int) -> str | None:
        if epoch != self._epoch:
            return "old_epoch"
        if episode != self._episode:
            return "old_episode"
        if self._in_flight is None:
            return "no_request"
        if seq != self._in_flight.seq:
            return "not_latest"
        return None

    # ----------------------------------------------------------------------------- lifecycle

    def reset(self, episode: int | None = None) -> int:
        """Start a new episode (default: current + 1, must increase); abandons the request.

        The latency tracker is kept (latency is episode-invariant, §4 rule 4).
        """
        new = self._episode + 1 if episode is None else episode
        if new <= self._episode:
            raise RTCError(f"episode ids must increase: current {self._episode}, got {new}")
        self._episode = new
        self._in_flight = None
        self._unacked_seq = -1
        self._episode_start = True
        return new

    def new_epoch(self) -> int:
        """Bump the session epoch (after a reconnect); abandons the in-flight request."""
        self._epoch += 1
        self._in_flight = None
        return self._epoch

    def pause(self) -> None:
        """Stop planning requests (the queue keeps playing)."""
        self._paused = True

    def resume(self) -> None:
        """Plan requests again."""
        self._paused = False

    def statistics(self) -> PlannerStatistics:
        """Snapshot of the counters and latency figures."""
        return PlannerStatistics(
            episode=self._episode,
            epoch=self._epoch,
            dropped=dict(self._dropped),
            in_flight=self._in_flight is not None,
            last_latency_s=self._last_latency,
            max_latency_s=self.tracker.max(),
            p95_latency_s=self.tracker.p95(),
            inference_delay=inference_delay_steps(self.tracker, self.config.dt),
            **self._counts,
        )


def _rows(prefix: np.ndarray | None, rows: int) -> np.ndarray | None:
    if prefix is None or rows == 0:
        return None
    return prefix[:rows]
