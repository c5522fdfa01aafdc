"""Pure alignment of asynchronous streams onto a dataset's fixed fps grid (no I/O, no clock).

The recorder receives cameras, joint states and actions at their own rates, each message stamped
with its **capture time** (runtime clock, seconds). A LeRobot dataset needs one row per grid
tick ``T_k = t0 + k / fps``. :class:`FrameAligner` decides, from capture times only (never
arrival times or nominal rates), which sample of every stream goes into the row of each tick.

Theory of operation -- the alignment rule
-----------------------------------------
*Causal sample-and-hold.* The value of stream ``s`` at tick ``T_k`` is the **latest sample with
capture time ``t <= T_k``** -- what a controller running at ``T_k`` could have seen (LeRobot's
record loop does the same by reading the newest frame each tick). A sample is used only while
it is fresh: ``T_k - t <= max(max_age_s[s], HOLD_PERIODS * P, G)`` where ``max_age_s`` is the
*tolerance* (default ``2 / fps``: one missed frame of a camera running at the dataset rate is
tolerated, two are not), ``P`` is the stream's own period and ``G`` its longest gap (capped at
:data:`MAX_GAP_HOLD_S`), both measured over its last :data:`RATE_WINDOW` samples up to and
including this one (:func:`_rhythm`; causal, so batch and incremental polling agree). A tick
where any stream has no fresh sample is **skipped** and counted per stream
(``statistics().skipped``); it produces no row, so the recorder writes only complete rows.
Skipped ticks shift later rows one grid step early in the dataset's ``timestamp`` -- the
``capture_time`` column (:func:`capture_time_feature`) keeps the truth.

*Streams slower than the grid: hold the last sample (issue 16).* A LeRobot dataset's timeline
*is* its row count (``timestamp = frame_index / fps``), so every skipped tick shortens the
episode. With a tolerance fixed in dataset frames, a 5 fps MuJoCo camera at fps 30 went stale
between its frames and 6 s were stored as 2.1 s. The tolerance therefore grows to two of the
stream's own periods, or to the longest gap it recently showed (a joint stream starved by a
render holding the plant's lock every few frames, measured at ~20 Hz with 150 ms pauses on the
2-core dev machine): a slow or irregular stream's latest sample is **repeated** in the following
rows until a newer one arrives (hold-last, what LeRobot's recording loop does when it reads a
camera every tick), so the episode keeps its real duration; a stream that *stops* still goes
stale after that bound and skips ticks. Repeats are counted per stream (``statistics().repeated``: rows
reusing the previous row's sample, whatever the reason), and a stream whose measured rate is
below ``SLOW_RATE_RATIO * fps`` (over at least :data:`MIN_RATE_INTERVALS` intervals) is reported
in ``statistics().slow`` with its rate: the recorder warns once per episode and marks the
episode. Training data from such a stream is a step function, not motion -- worth knowing, not
worth silently squeezing the timeline for.

*When a tick is final.* Samples arrive late (transport, encoding). Stream ``s`` is *settled*
for ``T_k`` once a sample with ``t > T_k`` has arrived (streams are in capture order per
stream) or once ``now >= T_k + settle_s`` (the delivery-latency allowance). A tick is resolved
when every stream is settled for it. A sample arriving after its tick was resolved is still
kept for later ticks; a sample older than the stream's newest is out of order and dropped
(counted).

Buffers are bounded (``buffer_size`` per stream, oldest dropped and counted): samples are
pruned as soon as a newer sample at or before the resolved tick exists.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import median
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "CAPTURE_TIME_KEY",
    "AlignStatistics",
    "AlignedRow",
    "FrameAligner",
    "capture_time_feature",
]

CAPTURE_TIME_KEY = "capture_time"
"""Dataset feature holding real capture times. Deliberately *not* ``observation.*``: LeRobot
turns every ``observation.*`` feature into a policy input (``dataset_to_policy_features``)."""

DEFAULT_MAX_AGE_FRAMES = 2.0
"""Default tolerance in dataset frames (``max_age_s = 2 / fps``); see the module docstring."""
DEFAULT_SETTLE_S = 0.1
"""Default delivery-latency allowance: a camera frame crosses capture -> channel -> recorder in
well under 100 ms on the target machines; later samples still serve later ticks."""
DEFAULT_BUFFER_SIZE = 64
"""Samples kept per stream: 0.64 s of a 100 Hz joint stream, > settle_s + max_age_s."""
HOLD_PERIODS = 2.0
"""A sample stays fresh for this many of its stream's own periods (one missed frame of the
stream is tolerated, two are not: the default tolerance's rule, in the stream's own frames)."""
MAX_GAP_HOLD_S = 1.0
"""Cap of the longest-gap term: one long pause must not keep a stream fresh for longer than
this (a stream silent for 1 s is treated as stopped unless its period says otherwise)."""
RATE_WINDOW = 16
"""Samples whose intervals give a stream's period (0.5 s of a 30 fps camera, 3 s at 5 fps)."""
MIN_RATE_INTERVALS = 4
"""Intervals needed before a stream can be called slow (0.8 s of a 5 fps camera)."""
SLOW_RATE_RATIO = 0.9
"""A stream measured below ``0.9 * fps`` cannot fill the grid: reported as slow (the margin
absorbs a camera that runs a little under its nominal rate, e.g. 29.5 fps at fps 30)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AlignedRow:
    """The samples chosen for one grid tick."""

    tick: int
    """Grid index ``k`` (counts skipped ticks too)."""
    tick_time: float
    """``t0 + k / fps`` on the runtime clock."""
    values: Mapping[str, Any]
    """Stream name -> the chosen sample's value."""
    capture_times: Mapping[str, float]
    """Stream name -> the chosen sample's capture time."""

    def capture_offsets(self, streams: Sequence[str], t0: float) -> np.ndarray:
        """Capture times relative to the episode origin ``t0`` (float64), in ``streams`` order:
        the value of the :data:`CAPTURE_TIME_KEY` feature (comparable with ``timestamp``)."""
        return np.array([self.capture_times[s] - t0 for s in streams], dtype=np.float64)


@dataclass(frozen=True, slots=True, kw_only=True)
class AlignStatistics:
    """Counters of a :class:`FrameAligner`."""

    rows: int
    """Rows emitted."""
    skipped: dict[str, int] = field(default_factory=dict)
    """Ticks skipped, per stream that had no fresh sample (a tick can count for several)."""
    skipped_ticks: int = 0
    """Ticks skipped in total."""
    repeated: dict[str, int] = field(default_factory=dict)
    """Rows that reuse the previous row's sample, per stream (a stream slower than the grid)."""
    slow: dict[str, float] = field(default_factory=dict)
    """Streams measured slower than ``SLOW_RATE_RATIO * fps``: their latest rate, Hz."""
    out_of_order: int = 0
    """Samples dropped because they were older than their stream's newest sample."""
    overflow: int = 0
    """Samples dropped because a stream's buffer was full."""


def capture_time_feature(streams: Sequence[str]) -> dict[str, Any]:
    """Feature spec of :data:`CAPTURE_TIME_KEY` for the given stream order."""
    return {"dtype": "float64", "shape": [len(streams)], "names": list(streams)}


class FrameAligner:
    """Assigns samples of several streams to the ticks of a fixed-rate grid (pure, synchronous)."""

    def __init__(
        self,
        *,
        fps: int,
        streams: Sequence[str],
        start_time: float,
        max_age_s: float | Mapping[str, float] | None = None,
        settle_s: float = DEFAULT_SETTLE_S,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        history: Mapping[str, Sequence[float]] | None = None,
    ) -> None:
        """``history``: capture times of samples seen before ``start_time``, per stream, so a
        slow stream's period is known from tick 0 (only their times: the values are not needed)."""
        if fps <= 0 or not streams or len(set(streams)) != len(streams):
            raise ValueError("FrameAligner needs fps > 0 and a non-empty list of distinct streams")
        if settle_s < 0 or buffer_size < 2 or not math.isfinite(start_time):
            raise ValueError("FrameAligner needs settle_s >= 0, buffer_size >= 2, finite start_time")
        self.fps, self.streams, self.start_time = fps, tuple(streams), start_time
        default_age = DEFAULT_MAX_AGE_FRAMES / fps
        if max_age_s is None or isinstance(max_age_s, int | float):
            age = default_age if max_age_s is None else float(max_age_s)
            self._max_age = dict.fromkeys(self.streams, age)
        else:
            self._max_age = {s: float(max_age_s.get(s, default_age)) for s in self.streams}
        self._settle = settle_s
        self._buffers: dict[str, deque[_Sample]] = {s: deque(maxlen=buffer_size) for s in self.streams}
        history = history or {}
        self._recent = {s: deque(sorted(history.get(s, ())), maxlen=RATE_WINDOW) for s in self.streams}
        self._newest = dict.fromkeys(self.streams, -math.inf)
        self._tick = 0
        self._rows = self._skipped_ticks = self._out_of_order = self._overflow = 0
        self._skipped = dict.fromkeys(self.streams, 0)
        self._repeated = dict.fromkeys(self.streams, 0)
        self._last_used = dict.fromkeys(self.streams, math.nan)
        self._slow: dict[str, float] = {}

    @property
    def next_tick(self) -> int:
        """Index of the first unresolved tick."""
        return self._tick

    def tick_time(self, k: int) -> float:
        """``t0 + k / fps`` (computed from the origin, so it never drifts)."""
        return self.start_time + k / self.fps

    def push(self, stream: str, t_capture: float, value: Any) -> None:
        """Offer one sample of ``stream`` captured at ``t_capture``."""
        buf = self._buffers[stream]  # KeyError for an unknown stream: a caller bug
        if not math.isfinite(t_capture) or t_capture <= self._newest[stream]:
            self._out_of_order += 1
            return
        if len(buf) == buf.maxlen:
            self._overflow += 1
        recent = self._recent[stream]
        if not recent or t_capture > recent[-1]:  # history may already hold it
            recent.append(t_capture)
        buf.append(_Sample(t_capture, value, *_rhythm(recent)))
        self._newest[stream] = t_capture

    def poll(self, now: float) -> list[AlignedRow]:
        """Resolve every tick that is final at time ``now``; return the rows, in tick order."""
        rows = []
        while True:
            t_k = self.tick_time(self._tick)
            if not all(self._settled(s, t_k, now) for s in self.streams):
                return rows
            row = self._resolve(t_k)
            if row is not None:
                rows.append(row)
            self._tick += 1

    def statistics(self) -> AlignStatistics:
        """A snapshot of the counters."""
        return AlignStatistics(
            rows=self._rows,
            skipped=dict(self._skipped),
            skipped_ticks=self._skipped_ticks,
            out_of_order=self._out_of_order,
            overflow=self._overflow,
            repeated=dict(self._repeated),
            slow=dict(self._slow),
        )

    def _settled(self, stream: str, t_k: float, now: float) -> bool:
        return self._newest[stream] > t_k or now >= t_k + self._settle

    def _resolve(self, t_k: float) -> AlignedRow | None:
        chosen: dict[str, _Sample] = {}
        for stream in self.streams:
            sample = self._latest_at(stream, t_k)
            if sample is not None and t_k - sample.t <= self._fresh_for(stream, sample):
                chosen[stream] = sample
            else:
                self._skipped[stream] += 1
        if len(chosen) < len(self.streams):
            self._skipped_ticks += 1
            return None
        self._rows += 1
        for stream, sample in chosen.items():
            self._account(stream, sample)
        return AlignedRow(
            tick=self._tick,
            tick_time=t_k,
            values={s: sample.value for s, sample in chosen.items()},
            capture_times={s: sample.t for s, sample in chosen.items()},
        )

    def _fresh_for(self, stream: str, sample: _Sample) -> float:
        """How old ``sample`` may be at a tick: the tolerance, two of its stream's periods, or the
        longest gap the stream recently showed."""
        return max(self._max_age[stream], HOLD_PERIODS * sample.period, sample.gap)

    def _account(self, stream: str, sample: _Sample) -> None:
        """Count a repeat of the previous row's sample; note a stream slower than the grid."""
        if sample.t == self._last_used[stream]:
            self._repeated[stream] += 1
        self._last_used[stream] = sample.t
        if sample.intervals >= MIN_RATE_INTERVALS and sample.period * self.fps * SLOW_RATE_RATIO > 1:
            self._slow[stream] = 1 / sample.period

    def _latest_at(self, stream: str, t_k: float) -> _Sample | None:
        """Latest sample at or before ``t_k``; prunes the older ones (never needed again)."""
        buf = self._buffers[stream]
        while len(buf) >= 2 and buf[1].t <= t_k:
            buf.popleft()
        return buf[0] if buf and buf[0].t <= t_k else None


class _Sample(NamedTuple):
    """One buffered sample and its stream's rhythm as measured when it arrived."""

    t: float
    value: Any
    period: float  # the stream's period over its last RATE_WINDOW samples (0: unknown)
    intervals: int  # how many intervals that period is over
    gap: float  # the longest of those intervals, capped at MAX_GAP_HOLD_S (0: unknown)


def _rhythm(recent: deque[float]) -> tuple[float, int, float]:
    """A stream's period, the number of intervals it is over, and its longest gap (capped),
    from its ``recent`` capture times (zeros with fewer than two samples). The period is the
    mean interval leaving out gaps longer than twice the median: a pause says the stream
    stalled, not that it is slow (it is what the rate reported for a slow stream is based on)."""
    if len(recent) < 2:
        return 0.0, 0, 0.0
    gaps = [b - a for a, b in itertools.pairwise(recent)]
    typical = [g for g in gaps if g <= 2 * median(gaps)]
    return sum(typical) / len(typical), len(typical), min(max(gaps), MAX_GAP_HOLD_S)
