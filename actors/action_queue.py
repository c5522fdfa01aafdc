"""The ``action_queue`` actor: owns the current chunk and emits one action per control tick.

Theory of operation
-------------------
Every tick of an absolute-deadline :class:`rtrun.Ticker` at ``fps · interpolation_multiplier``
the actor calls :meth:`ActionSource.tick` (the sans-io core in :mod:`rtrun.models.rtc`) with
``anyio.current_time()``: the next action comes from local state only, never from a round trip,
and the tick never awaits anything but the ticker (outputs are sent with ``send_nowait``; a full
``block`` consumer costs a counted drop, not a late tick). The core applies, in LeRobot's
order, interpolation, the staleness bound ``max_action_age_s`` and the fallback
(``hold`` = send nothing, ``repeat_last``, ``zero``).

Merges and episode commands are handled by two small tasks of the same actor as soon as they
arrive. They run on the event loop between ticks and call the core without awaiting in between,
so every queue operation is serial (lerobot-rtc.md §2.7): single owner, no lock.

::

    rtc_merger ──MergeChunk──▶ [merge] ─┐
    EpisodeControl ──────────▶ [episode]├─ ActionSource ─ tick ─▶ [action] JointCommand ─▶ motor_bus
                                        └──────────────────────▶ [status] QueueStatus ──▶ rtc_merger

After every policy step (every ``M`` ticks), every merge and every reset the actor publishes a
:class:`QueueStatus`: the atomic snapshot the merger plans its next request from.

Invariant: a queued action is emitted at most once and never after a reset of its episode (the
core drops merges of another episode; a reset clears queue, interpolator and last action).
``repeat_last`` re-sends a command on purpose; ``JointCommand.seq`` still never repeats.

Design decisions (the brief is silent)
--------------------------------------
* **Episode authority.** The queue owns the episode id; the merger follows the ids it reads in
  :class:`QueueStatus`. ``EpisodeControl(command="reset")`` starts episode ``episode`` (when
  larger than the current one) or current + 1; ``start`` resets only when it names a larger
  episode (a ``start`` right after a ``reset`` must not throw away the new episode's first
  chunk). A restarted actor starts at (last published episode + 1): a restart is a
  discontinuity, and an action of the old episode must never be emitted after it.
* **Action names.** ``action_names = []`` (default) adopts the names of the first merge; a later
  merge with other names is dropped (counted, logged) — the merger also refuses it (fail-safe
  ``DEAD``). Until names are known there is nothing to send (even with ``fallback = "zero"``).
  Commands name motor joints: ``"elbow_flex.pos"`` -> ``"elbow_flex"``.
* Diagnostics (:mod:`rtrun.actors._diagnostics`): gripper values outside ``gripper_range`` are
  clamped with a counted, rate-limited warning; ``near_zero_steps`` consecutive near-zero policy
  actions give one warning per streak.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import anyio
import numpy as np
import rtrun
from anyio.abc import TaskStatus
from rtrun.models.rtc import ActionSource, TickOutput

from ._diagnostics import (
    DEFAULT_LOG_INTERVAL_S,
    DEFAULT_NEAR_ZERO_ATOL,
    DEFAULT_NEAR_ZERO_STEPS,
    GripperClamp,
    NearZeroWatch,
    RateLimiter,
    joint_name,
)
from .messages import EpisodeControl, JointCommand
from .rtc_messages import MergeChunk, QueueStatus, readonly

__all__ = ["ActionQueueActor", "ActionQueueParams", "QueueCore", "next_episode"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionQueueParams:
    """Parameters of the ``action_queue`` actor."""

    fps: float = 30.0
    """Policy action rate (the chunk's step rate); the tick rate is ``fps · interpolation_multiplier``."""
    interpolation_multiplier: int = 1
    """Linear interpolation sub-steps per policy action (LeRobot ``ActionInterpolator``)."""
    rtc: bool = True
    """Replace-with-delay-trim merges (RTC); False: append merges. Must match the merger's ``rtc``."""
    max_action_age_s: float | None = 3.0
    """Clear the queue when the newest chunk's observation is older than this (None: never)."""
    fallback: Literal["hold", "repeat_last", "zero"] = "hold"
    """What to command when no policy action is available (``hold`` sends nothing)."""
    action_names: tuple[str, ...] = ()
    """Policy action names served; empty = adopt them from the first merge."""
    prefix_rows: int = 10
    """Left-over rows put in each status (>= the merger's ``prefix_rows``, the policy's H)."""
    gripper_range: tuple[float, float] | None = (0.0, 100.0)
    """Clamp actions whose name contains ``gripper`` into this range (None: no clamp)."""
    near_zero_steps: int = DEFAULT_NEAR_ZERO_STEPS
    """Warn after this many consecutive near-zero policy actions (0 disables)."""
    near_zero_atol: float = DEFAULT_NEAR_ZERO_ATOL
    """Tolerance of the near-zero check, robot units."""
    ticker_mode: Literal["auto", "portable", "precise", "spin"] = "auto"
    """Ticker time base (``auto``: timerfd on real time, portable on virtual time)."""
    log_interval_s: float = DEFAULT_LOG_INTERVAL_S
    """Minimum interval between two log lines of the same kind."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"fps must be finite and > 0, got {self.fps}")
        if self.interpolation_multiplier < 1:
            raise ValueError(f"interpolation_multiplier must be >= 1, got {self.interpolation_multiplier}")
        if self.max_action_age_s is not None and not self.max_action_age_s > 0:
            raise ValueError(f"max_action_age_s must be > 0 or None, got {self.max_action_age_s}")
        if self.prefix_rows < 0 or self.near_zero_steps < 0:
            raise ValueError("prefix_rows and near_zero_steps must be >= 0")
        if len(set(self.action_names)) != len(self.action_names):
            raise ValueError(f"action_names must be unique, got {self.action_names}")


def next_episode(current: int, msg: EpisodeControl) -> int | None:
    """Episode to reset to for ``msg`` (module docstring rules), or ``None`` for no reset."""
    if msg.command == "reset":
        return msg.episode if msg.episode > current else current + 1
    if msg.command == "start" and msg.episode > current:
        return msg.episode
    return None


class QueueCore:
    """The actor's synchronous state: an :class:`ActionSource` (created once names are known),
    diagnostics and counters. Every method is called from the event loop without awaiting."""

    def __init__(self, p: ActionQueueParams, *, episode: int = 0, source_id: str = "action_queue") -> None:
        self.p = p
        self.source_id = source_id
        self.episode = episode
        self.names: tuple[str, ...] = ()
        self.source: ActionSource | None = None
        self.seq = 0
        self.pre_ticks = 0
        self.dropped: dict[str, int] = {}
        self.last_merge_seq = -1
        self.last_tick: TickOutput | None = None
        self.near_zero = NearZeroWatch(steps=max(1, p.near_zero_steps), atol=p.near_zero_atol)
        self.gripper: GripperClamp | None = None
        self.limiter = RateLimiter(p.log_interval_s)
        if p.action_names:
            self._adopt(p.action_names)

    def _adopt(self, names: tuple[str, ...]) -> None:
        p = self.p
        self.names = tuple(names)
        self.commands = tuple(joint_name(n) for n in names)
        self.source = ActionSource(
            n_actions=len(names),
            rtc_enabled=p.rtc,
            interpolation_multiplier=p.interpolation_multiplier,
            max_action_age_s=p.max_action_age_s,
            fallback=p.fallback,
        )
        if self.episode > 0:
            self.source.reset(self.episode)
        if p.gripper_range is not None:
            self.gripper = GripperClamp(names, value_range=p.gripper_range, interval_s=p.log_interval_s)

    # ------------------------------------------------------------------------------- inputs

    def merge(self, msg: MergeChunk, now: float) -> str | None:
        """Apply a merge; return ``None`` when merged, else the (counted) drop reason."""
        if self.source is None and msg.episode == self.episode:
            self._adopt(tuple(msg.action_names))
        if self.source is None or tuple(msg.action_names) != self.names:
            reason = "old_episode" if msg.episode != self.episode else "action_names"
            self.dropped[reason] = self.dropped.get(reason, 0) + 1
            self.last_merge_seq = max(self.last_merge_seq, msg.seq)
            return reason
        reason = self.source.merge(msg.to_command(), now)
        self.last_merge_seq = max(self.last_merge_seq, msg.seq)
        return reason

    def reset(self, episode: int) -> None:
        """Start ``episode``: clear queue, interpolator, last action, diagnostics streaks."""
        self.episode = episode
        self.near_zero.reset()
        if self.source is not None:
            self.source.reset(episode)
            self.source.interpolator.reset()  # defensive: nothing of the old episode survives

    # --------------------------------------------------------------------------------- tick

    def tick(self, now: float) -> tuple[JointCommand | None, list[str]]:
        """One control tick: the command to send (or ``None``) and warnings to log."""
        if self.source is None:
            self.pre_ticks += 1
            return None, []
        out = self.source.tick(now)
        self.last_tick = out
        warnings: list[str] = []
        if out.stale_drop and self.limiter.allow("stale", now) is not None:
            warnings.append(
                f"queue cleared: newest chunk older than max_action_age_s={self.p.max_action_age_s}"
            )
        if out.action is None:
            return None, warnings
        action = out.action
        if self.gripper is not None:
            clamp = self.gripper.apply(action, now)
            action = clamp.action
            if clamp.message:
                warnings.append(clamp.message)
        if out.source == "queue" and self.p.near_zero_steps:
            msg = self.near_zero.observe(action)
            if msg:
                warnings.append(msg)
        self.seq += 1
        position = readonly(action)
        assert position is not None
        cmd = JointCommand(
            names=self.commands,
            position=position,
            seq=self.seq,
            t_issued=now,
            episode=out.episode,
            source=self.source_id,
        )
        return cmd, warnings

    def at_step_boundary(self) -> bool:
        """Whether the next tick pops a new policy action (time to publish a status)."""
        return self.source is None or self.source.interpolator.needs_new_action()

    # ------------------------------------------------------------------------------- status

    def status(self, now: float) -> QueueStatus:
        """The atomic snapshot + counters for the merger."""
        own_drops = sum(self.dropped.values())
        if self.source is None:
            return QueueStatus(
                episode=self.episode,
                idx_before=0,
                queued_steps=0,
                prefix_model=None,
                prefix_robot=None,
                last_merge_seq=self.last_merge_seq,
                action_names=(),
                t=now,
                ticks=self.pre_ticks,
                empty_ticks=self.pre_ticks,
                starved_ticks=0,
                fallback_ticks=0,
                stale_drops=0,
                merges=0,
                merges_dropped=own_drops,
            )
        snap = self.source.snapshot(self.p.prefix_rows)
        st = self.source.statistics()
        return QueueStatus(
            episode=snap.episode,
            idx_before=snap.idx_before,
            queued_steps=snap.queued_steps,
            prefix_model=snap.prefix_model,
            prefix_robot=snap.prefix_robot,
            last_merge_seq=max(self.last_merge_seq, snap.last_merge_seq),
            action_names=self.names,
            t=now,
            ticks=st.ticks + self.pre_ticks,
            empty_ticks=st.empty_ticks + self.pre_ticks,
            starved_ticks=st.starved_ticks,
            fallback_ticks=st.fallback_ticks,
            stale_drops=st.stale_drops,
            merges=st.merges,
            merges_dropped=own_drops + sum(st.merges_dropped.values()),
        )

    def dashboard(self, status: QueueStatus) -> dict[str, Any]:
        """Small JSON-able fields for ``ctx.set_status``."""
        last = self.last_tick
        return {
            "episode": status.episode,
            "queued_steps": status.queued_steps,
            "ticks": status.ticks,
            "empty_ticks": status.empty_ticks,
            "starved_ticks": status.starved_ticks,
            "fallback_ticks": status.fallback_ticks,
            "stale_drops": status.stale_drops,
            "merges": status.merges,
            "merges_dropped": status.merges_dropped,
            "gripper_clamped": 0 if self.gripper is None else self.gripper.clamped,
            "last_source": "none" if last is None else last.source,
            "commands": self.seq,
        }


class ActionQueueActor(rtrun.Actor):
    """Owns the current chunk; one robot-space action per control tick (see module doc)."""

    inputs = {
        "merge": rtrun.Input(MergeChunk, required=False, doc="chunks accepted by the rtc_merger"),
        "episode": rtrun.Input(EpisodeControl, required=False, doc="episode resets (start/reset)"),
    }
    outputs = {
        "action": rtrun.Output(JointCommand, doc="one command per tick for motor_bus 'command'"),
        "status": rtrun.Output(QueueStatus, doc="queue snapshot for the rtc_merger 'queue' input"),
    }
    Params = ActionQueueParams

    async def run(
        self,
        ctx: rtrun.ActorContext[ActionQueueParams],
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Tick at ``fps · M``; merge and reset as messages arrive."""
        p = ctx.params
        start_episode = int(ctx.status.get("episode", -1)) + 1 if ctx.restarts else 0
        self.core = QueueCore(p, episode=start_episode, source_id=ctx.id)
        self.ctx = ctx
        self.send_drops: dict[str, int] = {}
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._merges)
            tg.start_soon(self._episodes)
            async with rtrun.Ticker(p.fps * p.interpolation_multiplier, mode=p.ticker_mode) as ticker:
                self._publish(anyio.current_time())
                task_status.started()
                async for _tick in ticker:
                    self._tick(anyio.current_time())

    def _tick(self, now: float) -> None:
        cmd, warnings = self.core.tick(now)
        for text in warnings:
            self.ctx.log.warning("%s", text)
        if cmd is not None:
            self._send("action", cmd)
        if self.core.at_step_boundary():
            self._publish(now)

    def _publish(self, now: float) -> None:
        status = self.core.status(now)
        self._send("status", status)
        self.ctx.set_status(**self.core.dashboard(status), send_drops=dict(self.send_drops))

    def _send(self, output: str, msg: Any) -> None:
        try:
            self.ctx.output(output).send_nowait(msg)
        except anyio.WouldBlock:
            self.send_drops[output] = self.send_drops.get(output, 0) + 1

    async def _merges(self) -> None:
        async for msg in self.ctx.input("merge"):
            now = anyio.current_time()
            reason = self.core.merge(msg, now)
            if (
                reason is not None
                and reason != "old_episode"
                and self.core.limiter.allow(reason, now) is not None
            ):
                self.ctx.log.error(
                    "merge seq %d dropped (%s): chunk %s names %s, queue serves %s",
                    msg.seq,
                    reason,
                    np.shape(msg.chunk_robot),
                    list(msg.action_names),
                    list(self.core.names),
                )
            self._publish(now)

    async def _episodes(self) -> None:
        async for msg in self.ctx.input("episode"):
            new = next_episode(self.core.episode, msg)
            if new is None:
                continue
            self.core.reset(new)
            self.ctx.log.info("episode %d: queue cleared", new)
            self._publish(anyio.current_time())
