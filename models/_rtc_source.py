"""`ActionSource`: the sans-io core of the ``action_queue`` actor (one action per control tick).

Theory of operation
-------------------
The action_queue actor calls :meth:`ActionSource.tick` once per control tick with the current
time (``anyio.current_time()``); it never waits for anything else, so a tick is local and
bounded-time (DESIGN §4). Around LeRobot's :class:`ActionQueue` the source adds, in the order of
LeRobot's remote ``get_action`` + rollout loop (lerobot-rtc.md §6.3, §9.5):

1. interpolation: with multiplier ``M`` the queue is popped once every ``M`` ticks and the
   :class:`ActionInterpolator` fills the sub-steps (tick rate = ``fps·M``);
2. staleness: when a new policy action is needed and the newest merged chunk's observation is
   older than ``max_action_age_s`` while actions remain, the queue is cleared (counted);
3. fallback when nothing is available: ``hold`` (no command: ``action is None``),
   ``repeat_last`` (the last emitted command, ``None`` before the first one) or ``zero``.
   Like LeRobot, ``repeat_last``/``zero`` values pass through the interpolator, so with ``M > 1``
   a ``zero`` fallback ramps to zero over ``M`` ticks.

Merges arrive as :class:`MergeCommand` values built by the planner (``_rtc_planner``), possibly
from another actor. A command for another episode is dropped (counted): together with
:meth:`reset` clearing the queue, the interpolator and the last action, this gives the invariant
**a queued action is emitted at most once and never after a reset of its episode** — the
``ActionQueue`` itself never hands out a row twice (``get`` advances the index; merges discard
consumed rows). ``repeat_last`` re-sends a command on purpose; such ticks are tagged
``source="fallback"``.

:meth:`snapshot` returns the index before inference and both left-overs in **one** call
(lerobot-rtc.md §12.7: no idx/prefix race). An empty left-over is ``None`` (§12.1).

Staleness clock: the anchor is set at merge time to ``now - latency_s`` (≈ when the request's
observation was taken, as LeRobot's ``anchor = monotonic() - L``), using this actor's own clock;
only the latency duration crosses actors/hosts (DESIGN §2 clock rule).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ._rtc_core import ActionInterpolator, ActionQueue, RTCError

__all__ = [
    "FALLBACKS",
    "ActionSource",
    "ActionSourceStatistics",
    "MergeCommand",
    "QueueSnapshot",
    "TickOutput",
]

FALLBACKS: tuple[str, ...] = ("hold", "repeat_last", "zero")
"""Fallback policies when no policy action is available (lerobot-rtc.md §9.5)."""

DEFAULT_MAX_ACTION_AGE_S = 3.0
"""LeRobot remote client default staleness bound (≈ 90 steps at 30 fps, lerobot-rtc.md §9.1)."""

TickSource = Literal["queue", "fallback", "none"]


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueSnapshot:
    """Atomic view of the queue taken before an inference request."""

    episode: int
    """Episode the queue is serving."""
    idx_before: int
    """``ActionQueue.get_action_index()`` at snapshot time."""
    queued_steps: int
    """``qsize()``: policy steps still queued."""
    prefix_model: np.ndarray | None
    """Unexecuted model-space rows (at most ``max_rows``), ``None`` when empty."""
    prefix_robot: np.ndarray | None
    """Same rows in robot space, ``None`` when empty."""
    last_merge_seq: int
    """Request seq of the last merge command processed (applied or dropped); -1 if none."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MergeCommand:
    """A reply accepted by the planner, ready to be merged into the queue."""

    episode: int
    """Episode of the request that produced the chunk."""
    seq: int
    """Request sequence number."""
    chunk_model: np.ndarray
    """``(T, A)`` chunk in model space (kept for the next prefix)."""
    chunk_robot: np.ndarray
    """``(T, A)`` chunk in robot space (what the motors get)."""
    real_delay: int
    """Trim delay ``ceil(L/dt)`` of this cycle."""
    idx_before: int | None
    """Index snapshotted before the request (diagnostic check); ``None`` skips it."""
    latency_s: float
    """Measured request latency ``L``; the anchor becomes ``now - L``."""
    clamp_to_consumed: bool = False
    """Opt-in fix of the first-chunk over-trim (lerobot-rtc.md §12.6): trim at most the steps
    actually consumed since ``idx_before``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TickOutput:
    """What one control tick produced."""

    action: np.ndarray | None
    """Robot-space command (read-only) or ``None``: send nothing, the robot holds."""
    source: TickSource
    """``queue`` (policy action or interpolated sub-step), ``fallback`` (repeat_last/zero) or
    ``none`` (hold, or repeat_last without a previous action)."""
    episode: int
    """Episode this tick belongs to."""
    stale_drop: bool
    """Whether this tick cleared a stale queue."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionSourceStatistics:
    """Counters of an :class:`ActionSource` (JSON-able)."""

    episode: int
    """Current episode."""
    ticks: int
    """Ticks served since construction."""
    queue_ticks: int
    """Ticks whose command came from the policy (queue or interpolation)."""
    fallback_ticks: int
    """Ticks commanded by ``repeat_last``/``zero``."""
    empty_ticks: int
    """Ticks without a policy action (fallback or none), since construction."""
    starved_ticks: int
    """Empty ticks after the first merge of their episode (the policy fell behind)."""
    stale_drops: int
    """Queues cleared by the staleness bound."""
    merges: int
    """Merge commands applied."""
    merges_dropped: dict[str, int]
    """Merge commands dropped, by reason (``old_episode``, ``action_dim``, ``non_finite``)."""
    delay_mismatches: int
    """Merges where consumed steps differed from the trim delay (LeRobot's diagnostic)."""
    queued_steps: int
    """Current ``qsize()``."""


class ActionSource:
    """Owns the episode's :class:`ActionQueue`; hands out one command per tick (see module doc)."""

    def __init__(
        self,
        *,
        n_actions: int,
        rtc_enabled: bool = True,
        interpolation_multiplier: int = 1,
        max_action_age_s: float | None = DEFAULT_MAX_ACTION_AGE_S,
        fallback: str = "hold",
    ) -> None:
        if fallback not in FALLBACKS:
            raise RTCError(f"fallback must be one of {FALLBACKS}, got {fallback!r}")
        if n_actions < 1:
            raise RTCError(f"n_actions must be >= 1, got {n_actions}")
        if max_action_age_s is not None and not max_action_age_s > 0:
            raise RTCError(f"max_action_age_s must be > 0 or None, got {max_action_age_s}")
        self.n_actions = n_actions
        self.fallback = fallback
        self.max_action_age_s = max_action_age_s
        self.queue = ActionQueue(rtc_enabled=rtc_enabled)
        self.interpolator = ActionInterpolator(interpolation_multiplier)
        self._episode = 0
        self._anchor: float | None = None
        self._last_action: np.ndarray | None = None
        self._buffer_source: TickSource = "none"
        self._merged_this_episode = False
        self._last_merge_seq = -1
        self._counts = dict.fromkeys(
            ("ticks", "queue_ticks", "fallback_ticks", "empty_ticks", "starved_ticks"), 0
        )
        self._counts.update(stale_drops=0, merges=0)
        self._dropped: dict[str, int] = {}

    @property
    def episode(self) -> int:
        """Current episode id (starts at 0; :meth:`reset` advances it)."""
        return self._episode

    @property
    def queued_steps(self) -> int:
        """Policy steps still queued (``qsize()``)."""
        return self.queue.qsize()

    # ---------------------------------------------------------------------------------- tick

    def tick(self, now: float) -> TickOutput:
        """Produce this tick's command; call exactly once per control tick."""
        stale = False
        if self.interpolator.needs_new_action():
            stale = self._drop_if_stale(now)
            action = self.queue.get()
            if action is not None:
                self._buffer_source = "queue"
                self.interpolator.add(action)
            else:
                self._feed_fallback()
        out = self.interpolator.get()
        source: TickSource = "none" if out is None else self._buffer_source
        if out is not None:
            out.setflags(write=False)
            self._last_action = out
        self._count_tick(source)
        return TickOutput(action=out, source=source, episode=self._episode, stale_drop=stale)

    def _drop_if_stale(self, now: float) -> bool:
        if self.max_action_age_s is None or self._anchor is None or self.queue.qsize() <= 0:
            return False
        if now - self._anchor <= self.max_action_age_s:
            return False
        self.queue.clear()
        self._anchor = None
        self._counts["stale_drops"] += 1
        return True

    def _feed_fallback(self) -> None:
        if self.fallback == "zero":
            value: np.ndarray | None = np.zeros(self.n_actions, dtype=np.float32)
        elif self.fallback == "repeat_last" and self._last_action is not None:
            value = self._last_action.copy()
        else:
            return
        self._buffer_source = "fallback"
        self.interpolator.add(value)

    def _count_tick(self, source: TickSource) -> None:
        c = self._counts
        c["ticks"] += 1
        if source == "queue":
            c["queue_ticks"] += 1
            return
        c["empty_ticks"] += 1
        c["fallback_ticks"] += source == "fallback"
        c["starved_ticks"] += self._merged_this_episode

    # --------------------------------------------------------------------------------- merge

    def merge(self, cmd: MergeCommand, now: float) -> str | None:
        """Apply ``cmd``; return ``None`` when merged, else the (counted) reason it was dropped."""
        self._last_merge_seq = max(self._last_merge_seq, cmd.seq)
        reason = self._reject_reason(cmd)
        if reason is not None:
            self._dropped[reason] = self._dropped.get(reason, 0) + 1
            return reason
        delay = cmd.real_delay
        if cmd.clamp_to_consumed and cmd.idx_before is not None:
            delay = min(delay, max(0, self.queue.get_action_index() - cmd.idx_before))
        self.queue.merge(cmd.chunk_model, cmd.chunk_robot, delay, cmd.idx_before)
        self._anchor = now - cmd.latency_s
        self._merged_this_episode = True
        self._counts["merges"] += 1
        return None

    def _reject_reason(self, cmd: MergeCommand) -> str | None:
        if cmd.episode != self._episode:
            return "old_episode"
        for chunk in (cmd.chunk_model, cmd.chunk_robot):
            if chunk.ndim != 2 or chunk.shape[1] != self.n_actions:
                return "action_dim"
        if not np.isfinite(cmd.chunk_robot).all():
            return "non_finite"
        return None

    # ----------------------------------------------------------------------- snapshot, reset

    def snapshot(self, max_rows: int | None = None) -> QueueSnapshot:
        """Index before inference + both left-overs (at most ``max_rows`` rows) in one step."""
        return QueueSnapshot(
            episode=self._episode,
            idx_before=self.queue.get_action_index(),
            queued_steps=self.queue.qsize(),
            prefix_model=_prefix(self.queue.get_left_over(), max_rows),
            prefix_robot=_prefix(self.queue.get_processed_left_over(), max_rows),
            last_merge_seq=self._last_merge_seq,
        )

    def reset(self, episode: int | None = None) -> int:
        """Start a new episode: clear queue, interpolator, last action and anchor.

        ``episode`` defaults to the current one + 1 and must be greater than the current one.
        """
        new = self._episode + 1 if episode is None else episode
        if new <= self._episode:
            raise RTCError(f"episode ids must increase: current {self._episode}, got {new}")
        self._episode = new
        self.queue.clear()
        self.interpolator.reset()
        self._anchor = None
        self._last_action = None
        self._buffer_source = "none"
        self._merged_this_episode = False
        return new

    def statistics(self) -> ActionSourceStatistics:
        """Snapshot of the counters."""
        return ActionSourceStatistics(
            episode=self._episode,
            merges_dropped=dict(self._dropped),
            delay_mismatches=self.queue.delay_mismatches,
            queued_steps=self.queue.qsize(),
            **self._counts,
        )


def _prefix(rows: np.ndarray | None, max_rows: int | None) -> np.ndarray | None:
    if rows is None:
        return None
    rows = rows[:max_rows]
    if len(rows) == 0:
        return None
    out = np.ascontiguousarray(rows, dtype=np.float32)
    out.setflags(write=False)
    return out
