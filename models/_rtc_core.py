"""LeRobot-exact RTC building blocks in numpy: ActionQueue, LatencyTracker, delay math, weights.

Each class/function here reproduces a LeRobot component bit-for-bit on its observable outputs
(lerobot-rtc.md §2-§6, lerobot 0.6.1 semantics), so the parity tests can compare against
lerobot 0.4.4 directly. The planner/tick cores in ``_rtc_planner`` are built on top of them.

Deliberate differences from LeRobot (none changes an output):

* No lock. LeRobot's queue is shared by a control thread and an inference thread; in rtrun one
  actor owns the queue and handles every operation serially (lerobot-rtc.md §2.7), so the lock
  would only hide ownership bugs.
* numpy instead of torch. Inputs are anything ``np.asarray`` accepts (torch CPU tensors included)
  and are always copied; outputs are copies.
* The delay/index diagnostic (§2.3 step 1) is counted (``ActionQueue.delay_mismatches``) and
  logged at DEBUG, not WARNING: with ``trim = ceil(L/dt)`` it fires on nearly every merge (the
  trim usually exceeds the consumed count by one), so a warning per merge would flood the logs.
  Actors surface the counter instead.
* Delay arithmetic tolerates float noise: ``ceil(x - 1e-6)`` steps, so a latency that is an
  exact multiple of ``dt`` up to rounding (common on virtual clocks: ``(t2 - t1) / dt`` =
  ``9.000000000000002``) is not rounded up to an extra step. 1e-6 steps is 33 ns at 30 fps.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from typing import Literal

import numpy as np

from .policy import ActionDimensionError, ModelError

__all__ = [
    "PREFIX_SCHEDULES",
    "ActionInterpolator",
    "ActionQueue",
    "LatencyTracker",
    "RTCError",
    "get_prefix_weights",
    "guidance_weight",
    "guide_velocity",
    "inference_delay_steps",
    "pad_prefix",
    "trim_steps",
]

log = logging.getLogger("rtrun.models.rtc")

Schedule = Literal["LINEAR", "EXP", "ZEROS", "ONES"]
PREFIX_SCHEDULES: tuple[str, ...] = ("LINEAR", "EXP", "ZEROS", "ONES")
"""Prefix attention schedules of LeRobot's ``RTCAttentionSchedule`` (lerobot-rtc.md §5.1)."""

DEFAULT_LATENCY_WINDOW = 100
"""LeRobot ``LatencyTracker(maxlen=100)`` default window (lerobot-rtc.md §3)."""


class RTCError(ModelError, ValueError):
    """An RTC core was used against its rules (bad multiplier, bad episode order, ...)."""


def _as_chunk(x: object, what: str) -> np.ndarray:
    arr = np.array(x, copy=True)
    if arr.ndim != 2:
        raise RTCError(f"{what} must be a 2-D (steps, action_dim) array, got shape {arr.shape}")
    return arr


# --------------------------------------------------------------------------------- ActionQueue


class ActionQueue:
    """numpy port of LeRobot's ``lerobot.policies.rtc.action_queue.ActionQueue`` (0.6.1).

    ``rtc_enabled=True`` selects the replace-with-delay-trim merge, ``False`` the append merge.
    State: ``queue`` (robot space), ``original_queue`` (model space) and ``last_index`` (the next
    row to hand out); consumed rows stay in the arrays until the next merge rebuilds them.
    """

    def __init__(self, *, rtc_enabled: bool) -> None:
        self.rtc_enabled = rtc_enabled
        self.queue: np.ndarray | None = None
        self.original_queue: np.ndarray | None = None
        self.last_index = 0
        self.delay_mismatches = 0
        """Merges where ``last_index - idx_before`` differed from ``real_delay`` (diagnostic)."""

    def get(self) -> np.ndarray | None:
        """Next robot-space action (a copy) or ``None`` when empty; advances ``last_index``."""
        if self.queue is None or self.last_index >= len(self.queue):
            return None
        action = self.queue[self.last_index].copy()
        self.last_index += 1
        return action

    def qsize(self) -> int:
        """Unconsumed actions: ``len(queue) - last_index`` (0 before the first merge)."""
        return 0 if self.queue is None else len(self.queue) - self.last_index

    def empty(self) -> bool:
        """``qsize() <= 0``."""
        return self.qsize() <= 0

    def get_action_index(self) -> int:
        """``last_index``: the value snapshotted as ``idx_before`` before an inference."""
        return self.last_index

    def get_left_over(self) -> np.ndarray | None:
        """Copy of the unconsumed model-space rows; ``(0, A)`` when exhausted, ``None`` if none."""
        if self.original_queue is None:
            return None
        return self.original_queue[self.last_index :].copy()

    def get_processed_left_over(self) -> np.ndarray | None:
        """Copy of the unconsumed robot-space rows (same slice as :meth:`get_left_over`)."""
        if self.queue is None:
            return None
        return self.queue[self.last_index :].copy()

    def clear(self) -> None:
        """Drop both arrays and reset ``last_index`` to 0."""
        self.queue = None
        self.original_queue = None
        self.last_index = 0

    def merge(
        self,
        original: object,
        processed: object,
        real_delay: int,
        action_index_before_inference: int | None = None,
    ) -> None:
        """Merge a new chunk (lerobot-rtc.md §2.3): replace-with-trim (RTC) or append.

        A negative ``real_delay`` is clamped to 0 (0.6.1). ``action_index_before_inference`` only
        feeds the diagnostic check; the latency-derived delay always wins.
        """
        orig = _as_chunk(original, "original actions")
        proc = _as_chunk(processed, "processed actions")
        self._check_delays(real_delay, action_index_before_inference)
        if self.rtc_enabled:
            self._replace(orig, proc, max(0, int(real_delay)))
        else:
            self._append(orig, proc)

    def _check_delays(self, real_delay: int, idx_before: int | None) -> None:
        if idx_before is None:
            return
        consumed = max(0, self.last_index - idx_before)
        if consumed != real_delay:
            self.delay_mismatches += 1
            log.debug(
                "[ACTION_QUEUE] index difference and delay disagree: consumed %d, real delay %d",
                consumed,
                real_delay,
            )

    def _replace(self, orig: np.ndarray, proc: np.ndarray, delay: int) -> None:
        k = max(0, min(delay, len(orig), len(proc)))
        self.original_queue = orig[k:]
        self.queue = proc[k:]
        self.last_index = 0

    def _append(self, orig: np.ndarray, proc: np.ndarray) -> None:
        if self.queue is None or self.original_queue is None:
            self.original_queue = orig
            self.queue = proc
            return
        for old, new, what in (
            (self.queue, proc, "processed"),
            (self.original_queue, orig, "original"),
        ):
            if old.shape[1] != new.shape[1]:
                raise ActionDimensionError(
                    expected=old.shape[1], got=new.shape[1], context=f"append merge ({what})"
                )
        self.original_queue = np.concatenate([self.original_queue, orig])[self.last_index :]
        self.queue = np.concatenate([self.queue, proc])[self.last_index :]
        self.last_index = 0


# ------------------------------------------------------------------------------ LatencyTracker


class LatencyTracker:
    """Port of LeRobot's ``LatencyTracker``: a sliding window plus an all-time maximum."""

    def __init__(self, maxlen: int = DEFAULT_LATENCY_WINDOW) -> None:
        if maxlen < 1:
            raise RTCError(f"latency window must be >= 1, got {maxlen}")
        self._values: deque[float] = deque(maxlen=maxlen)
        self.max_latency = 0.0

    def reset(self) -> None:
        """Clear the window and the all-time maximum."""
        self._values.clear()
        self.max_latency = 0.0

    def add(self, latency: float | int | str) -> None:
        """Record one latency in seconds; negative samples are silently dropped (as LeRobot)."""
        val = float(latency)
        if val < 0:
            return
        self._values.append(val)
        self.max_latency = max(self.max_latency, val)

    def __len__(self) -> int:
        return len(self._values)

    def max(self) -> float:
        """All-time maximum since the last :meth:`reset` (survives the window); 0.0 if empty."""
        return self.max_latency

    def percentile(self, q: float) -> float:
        """q-quantile of the window (float32, linear interpolation).

        ``q <= 0`` gives the window minimum, ``q >= 1`` the all-time maximum; 0.0 when empty.
        """
        if not self._values:
            return 0.0
        q = float(q)
        if q <= 0.0:
            return min(self._values)
        if q >= 1.0:
            return self.max_latency
        return float(np.quantile(np.array(self._values, dtype=np.float32), q))

    def p95(self) -> float:
        """``percentile(0.95)``."""
        return self.percentile(0.95)


# --------------------------------------------------------------------------------- delay math


_STEP_EPS = 1e-6
"""Tolerance (in steps) absorbing float noise in ``latency / dt`` (see the module docstring)."""


def _ceil_steps(seconds: float, dt: float) -> int:
    return max(0, math.ceil(seconds / dt - _STEP_EPS))


def inference_delay_steps(tracker: LatencyTracker, dt: float) -> int:
    """The *sent* delay: ``ceil(tracker.max() / dt)``, or 0 while nothing was measured (§4)."""
    worst = tracker.max()
    return _ceil_steps(worst, dt) if worst > 0 else 0


def trim_steps(latency_s: float, dt: float) -> int:
    """The *trim* delay: ``ceil(latency / dt)`` for this cycle's measured latency (§4)."""
    return _ceil_steps(latency_s, dt)


def get_prefix_weights(start: int, end: int, total: int, schedule: str = "LINEAR") -> np.ndarray:
    """Port of ``RTCProcessor.get_prefix_weights`` (lerobot-rtc.md §5.1), float32, length ``total``.

    ``start`` = inference delay, ``end`` = execution horizon (capped to the prefix length by the
    caller), ``total`` = chunk length.
    """
    if schedule not in PREFIX_SCHEDULES:
        raise RTCError(f"prefix schedule must be one of {PREFIX_SCHEDULES}, got {schedule!r}")
    start = min(start, end)
    if schedule == "ZEROS":
        weights = np.zeros(total, dtype=np.float32)
        weights[:start] = 1.0
        return weights
    if schedule == "ONES":
        weights = np.ones(total, dtype=np.float32)
        weights[end:] = 0.0
        return weights
    ramp = _linweights(start, end, total)
    if schedule == "EXP":
        ramp = (ramp * np.expm1(ramp) / np.float32(math.e - 1)).astype(np.float32)
    trailing = np.zeros(max(total - end, 0), dtype=np.float32)
    leading = np.ones(max(min(start, total), 0), dtype=np.float32)
    return np.concatenate([leading, ramp, trailing])


def _linweights(start: int, end: int, total: int) -> np.ndarray:
    steps = total - max(total - end, 0) - start
    if end <= start or steps <= 0:
        return np.zeros(0, dtype=np.float32)
    return np.linspace(1.0, 0.0, steps + 2, dtype=np.float32)[1:-1]


def pad_prefix(prefix: np.ndarray, rows: int) -> np.ndarray:
    """Zero-pad or truncate a ``(k, A)`` prefix to exactly ``(rows, A)`` float32 (§2.5 step 4)."""
    out = np.zeros((rows, prefix.shape[1]), dtype=np.float32)
    n = min(rows, len(prefix))
    out[:n] = prefix[:n]
    return out


def guidance_weight(time: float, max_guidance_weight: float) -> float:
    """RTC guidance gain ``g`` at flow time ``time`` (lerobot-rtc.md §5.2 step 6).

    Computed in float32 exactly like the shipped torch code: ``c = (1-τ)/τ`` and ``c·inv_r2``
    pass through ``nan_to_num(posinf=max)`` — so +inf becomes the maximum, but NaN becomes 0
    (``time == 0`` gives ``g = 0``: no guidance at pure noise), then ``min(g, max)``.
    """
    f32 = np.float32
    big = f32(max_guidance_weight)
    tau = f32(1.0) - f32(time)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        one_minus_sq = (f32(1.0) - tau) ** 2
        inv_r2 = (one_minus_sq + tau**2) / one_minus_sq
        c = np.nan_to_num((f32(1.0) - tau) / tau, posinf=big)
        g = np.nan_to_num(c * inv_r2, posinf=big)
    return float(min(g, big))


def guide_velocity(
    x_t: np.ndarray,
    v: np.ndarray,
    prefix: np.ndarray,
    weights: np.ndarray,
    time: float,
    max_guidance_weight: float,
) -> np.ndarray:
    """Guided velocity ``v - g·(prefix - (x_t - time·v))·w`` (§5.2 with the shipped VJP = err).

    ``prefix`` is already padded to ``x_t``'s shape; ``weights`` has one entry per row.
    """
    x1 = x_t - time * v
    err = (prefix - x1) * weights[:, None]
    return v - guidance_weight(time, max_guidance_weight) * err


# -------------------------------------------------------------------------- ActionInterpolator


class ActionInterpolator:
    """Port of ``lerobot.utils.action_interpolator.ActionInterpolator`` (lerobot-rtc.md §6.1).

    ``N`` policy actions become ``1 + (N-1)·M`` robot commands; the last sub-step equals the
    target up to float rounding.
    """

    def __init__(self, multiplier: int = 1) -> None:
        if int(multiplier) != multiplier or multiplier < 1:
            raise RTCError(f"interpolation multiplier must be an integer >= 1, got {multiplier}")
        self.multiplier = int(multiplier)
        self._prev: np.ndarray | None = None
        self._buffer: deque[np.ndarray] = deque()

    def add(self, action: np.ndarray) -> None:
        """Queue the sub-steps from the previous action to ``action``."""
        a = np.array(action, copy=True)
        if self._prev is None or self.multiplier == 1:
            self._buffer = deque([a])
        else:
            prev, m = self._prev, self.multiplier
            self._buffer = deque(prev + (i / m) * (a - prev) for i in range(1, m + 1))
        self._prev = a

    def get(self) -> np.ndarray | None:
        """Pop the next sub-step, ``None`` when the buffer is empty."""
        return self._buffer.popleft() if self._buffer else None

    def needs_new_action(self) -> bool:
        """Whether the buffer is empty (time to pop the action queue)."""
        return not self._buffer

    def reset(self) -> None:
        """Forget the previous action and the buffer (episode start)."""
        self._prev = None
        self._buffer.clear()

    def get_control_interval(self, fps: float) -> float:
        """Robot command period ``1 / (fps·M)``."""
        return 1.0 / (fps * self.multiplier)
