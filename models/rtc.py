"""Real-time chunking (RTC) for rtrun: pure, synchronous cores with LeRobot's exact semantics.

Theory of operation
-------------------
A chunking policy returns ``T`` future actions per inference, but inference takes ``L`` seconds,
longer than a control tick. While it runs, the robot keeps executing the previous chunk; when the
new chunk arrives its first ``d = ceil(L/dt)`` steps are already in the past. RTC therefore

1. asks for the next chunk early enough (self-clocking: when the queued playback drops to
   ``buffer_time_s``), with **one request in flight**;
2. sends the policy the unexecuted *model-space* tail of the current chunk (the prefix) and the
   expected delay ``ceil(max latency/dt)``, so a guided policy makes the new chunk continue it;
3. on arrival, **replaces** the queue with the new chunk minus its first ``ceil(L/dt)`` steps
   (RTC on) or **appends** it (RTC off), exactly like LeRobot's ``ActionQueue``.

The pieces, each a plain class driven by its caller (no threads, no clocks, no I/O)::

    rtc_merger actor                              action_queue actor (control tick)
    ┌──────────────────────────┐  MergeCommand   ┌───────────────────────────────────┐
    │ RequestPlanner           │ ──────────────► │ ActionSource                      │
    │  LatencyTracker          │                 │  ActionQueue (LeRobot port)       │
    │  seq / episode / epoch   │ ◄────────────── │  ActionInterpolator, staleness,   │
    │  one in flight, filters  │  QueueSnapshot  │  fallback hold/repeat_last/zero   │
    └──────────────────────────┘                 └───────────────────────────────────┘
          │ InferenceRequest ▲ reply (seq, episode, epoch, chunk_model, chunk_robot)
          ▼                  │
        policy worker: Policy.predict_chunk(obs, inference_delay=, prefix=) + postprocessor

Both cores may also live in one actor (call ``source.snapshot()`` then ``planner.poll()`` each
tick; feed replies through ``planner.on_reply()`` into ``source.merge()``):
:func:`rtrun.models._rtc_sim.simulate` does exactly that on a virtual clock.

LeRobot parity: :class:`ActionQueue`, :class:`LatencyTracker`, :func:`get_prefix_weights`,
:class:`ActionInterpolator` reproduce lerobot 0.6.1 (negative delays clamp to 0), checked against
lerobot 0.4.4 in the tests. Where LeRobot has a defect (lerobot-rtc.md §12) the planner/source
follow the fix: empty left-over = no prefix, one atomic snapshot, explicit episode start, and an
opt-in first-chunk over-trim clamp.
"""

from __future__ import annotations

from ._rtc_core import (
    PREFIX_SCHEDULES,
    ActionInterpolator,
    ActionQueue,
    LatencyTracker,
    RTCError,
    get_prefix_weights,
    guidance_weight,
    guide_velocity,
    inference_delay_steps,
    pad_prefix,
    trim_steps,
)
from ._rtc_planner import (
    DROP_REASONS,
    DroppedReply,
    InferenceRequest,
    PlannerConfig,
    PlannerStatistics,
    RequestPlanner,
)
from ._rtc_source import (
    FALLBACKS,
    ActionSource,
    ActionSourceStatistics,
    MergeCommand,
    QueueSnapshot,
    TickOutput,
)

__all__ = [
    "DROP_REASONS",
    "FALLBACKS",
    "PREFIX_SCHEDULES",
    "ActionInterpolator",
    "ActionQueue",
    "ActionSource",
    "ActionSourceStatistics",
    "DroppedReply",
    "InferenceRequest",
    "LatencyTracker",
    "MergeCommand",
    "PlannerConfig",
    "PlannerStatistics",
    "QueueSnapshot",
    "RTCError",
    "RequestPlanner",
    "TickOutput",
    "get_prefix_weights",
    "guidance_weight",
    "guide_velocity",
    "inference_delay_steps",
    "pad_prefix",
    "trim_steps",
]
