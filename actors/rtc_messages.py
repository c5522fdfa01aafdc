"""Messages between the ``rtc_merger`` and ``action_queue`` actors (the RTC control path).

The merger never touches the queue: it sends :class:`MergeChunk` commands and reads
:class:`QueueStatus` snapshots, the wire forms of :class:`rtrun.models.rtc.MergeCommand` and
:class:`rtrun.models.rtc.QueueSnapshot` (lerobot-rtc.md §2.7, §12.7: the queue's owner handles
every operation serially, and the index before inference and both left-overs travel in **one**
message). Conversions to and from the pure-core values live here so both actors agree on them.

Both actors normally run in the robot process; the types are still registered, codec-ready
messages so the pair can be split across processes or recorded.

The reply error kinds (:data:`ERROR_KINDS`, :data:`CONTRACT_ERRORS`) live in the catalogue next to
``InferenceReply.error_kind`` (:mod:`rtrun.actors.messages`) and are re-exported here.
"""

from __future__ import annotations

import numpy as np
from rtrun import Message, message
from rtrun.models.rtc import MergeCommand, QueueSnapshot

from .messages import CONTRACT_ERRORS as CONTRACT_ERRORS
from .messages import ERROR_KINDS as ERROR_KINDS

__all__ = [
    "CONTRACT_ERRORS",
    "ERROR_KINDS",
    "MergeChunk",
    "QueueStatus",
    "readonly",
]


def readonly(array: np.ndarray | None) -> np.ndarray | None:
    """Return a contiguous float32 read-only copy of ``array`` (``None`` stays ``None``)."""
    if array is None:
        return None
    out = np.array(array, dtype=np.float32, copy=True, order="C")
    out.flags.writeable = False
    return out


@message(tag="rtrun.MergeChunk", version=1)
class MergeChunk(Message):
    """A reply accepted by the merger, to be merged into the action queue (RTC replace or append)."""

    episode: int
    """Episode of the request that produced the chunk; another episode's chunk is dropped."""
    epoch: int
    """Session epoch of the request (diagnostic: the merger already filtered old epochs)."""
    seq: int
    """Request sequence number; acknowledged through ``QueueStatus.last_merge_seq``."""
    chunk_model: np.ndarray
    """``(T, A)`` float32 chunk in model space (the next RTC prefix comes from it); read-only."""
    chunk_robot: np.ndarray
    """``(T, A)`` float32 chunk in robot space (what the motors get); read-only."""
    action_names: tuple[str, ...]
    """Column names of both chunks (the policy's ordered action names)."""
    real_delay: int
    """Trim delay ``ceil(L/dt)`` of this cycle (ignored by the append merge)."""
    idx_before: int | None
    """Queue index snapshotted before the request (diagnostic); ``None`` skips the check."""
    latency_s: float
    """Measured request latency ``L`` (a duration); the queue's staleness anchor is ``now - L``."""
    clamp_to_consumed: bool = False
    """Trim at most the steps consumed since ``idx_before`` (lerobot-rtc.md §12.6, opt-in)."""

    @classmethod
    def from_command(cls, cmd: MergeCommand, *, epoch: int, action_names: tuple[str, ...]) -> MergeChunk:
        """Wrap a planner :class:`MergeCommand` (arrays are copied read-only)."""
        model, robot = readonly(cmd.chunk_model), readonly(cmd.chunk_robot)
        assert model is not None and robot is not None
        return cls(
            episode=cmd.episode,
            epoch=epoch,
            seq=cmd.seq,
            chunk_model=model,
            chunk_robot=robot,
            action_names=tuple(action_names),
            real_delay=cmd.real_delay,
            idx_before=cmd.idx_before,
            latency_s=cmd.latency_s,
            clamp_to_consumed=cmd.clamp_to_consumed,
        )

    def to_command(self) -> MergeCommand:
        """The pure-core :class:`MergeCommand` for :meth:`ActionSource.merge`."""
        return MergeCommand(
            episode=self.episode,
            seq=self.seq,
            chunk_model=np.asarray(self.chunk_model),
            chunk_robot=np.asarray(self.chunk_robot),
            real_delay=self.real_delay,
            idx_before=self.idx_before,
            latency_s=self.latency_s,
            clamp_to_consumed=self.clamp_to_consumed,
        )


@message(tag="rtrun.QueueStatus", version=1)
class QueueStatus(Message):
    """The action queue's atomic snapshot plus its counters (published every policy step)."""

    episode: int
    """Episode the queue is serving (the episode authority: the merger follows it)."""
    idx_before: int
    """``ActionQueue.get_action_index()`` at snapshot time."""
    queued_steps: int
    """Policy steps still queued (``qsize()``)."""
    prefix_model: np.ndarray | None
    """Unexecuted model-space rows (at most ``prefix_rows``), ``None`` when empty; read-only."""
    prefix_robot: np.ndarray | None
    """The same rows in robot space, ``None`` when empty; read-only."""
    last_merge_seq: int
    """Seq of the last merge command processed (applied or dropped); -1 if none."""
    action_names: tuple[str, ...]
    """Action names the queue serves; empty until adopted from the first merge."""
    t: float
    """Queue actor's clock when the snapshot was taken, seconds (same process as the merger)."""
    ticks: int
    """Control ticks served since the actor started."""
    empty_ticks: int
    """Ticks without a policy action (fallback or none)."""
    starved_ticks: int
    """Empty ticks after the first merge of their episode (the policy fell behind)."""
    fallback_ticks: int
    """Ticks commanded by ``repeat_last``/``zero``."""
    stale_drops: int
    """Queues cleared by the staleness bound ``max_action_age_s``."""
    merges: int
    """Merge commands applied."""
    merges_dropped: int
    """Merge commands dropped (old episode, wrong dimension or names, non-finite)."""

    def to_snapshot(self) -> QueueSnapshot:
        """The pure-core :class:`QueueSnapshot` for :meth:`RequestPlanner.poll`."""
        return QueueSnapshot(
            episode=self.episode,
            idx_before=self.idx_before,
            queued_steps=self.queued_steps,
            prefix_model=None if self.prefix_model is None else np.asarray(self.prefix_model),
            prefix_robot=None if self.prefix_robot is None else np.asarray(self.prefix_robot),
            last_merge_seq=self.last_merge_seq,
        )
