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
it is fresh: ``T_k - t <= max_age_s[s]`` (the *tolerance*, default ``2 / fps``: one missed
frame of a camera running at the dataset rate is tolerated, two are not). A tick where any
stream has no fresh sample is **skipped** and counted per stream (``statistics().skipped``);
it produces no row, so the recorder writes only complete rows. Skipped ticks shift later rows
one grid step early in the dataset's ``timestamp`` -- the ``capture_time`` column
(:func:`capture_time_feature`) keeps the truth.

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

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

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
    ) -> None:
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
        self._buffers: dict[str, deque[tuple[float, Any]]] = {
            s: deque(maxlen=buffer_size) for s in self.streams
        }
        self._newest = dict.fromkeys(self.streams, -math.inf)
        self._tick = 0
        self._rows = self._skipped_ticks = self._out_of_order = self._overflow = 0
        self._skipped = dict.fromkeys(self.streams, 0)

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
        buf.append((t_capture, value))
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
        )

    def _settled(self, stream: str, t_k: float, now: float) -> bool:
        return self._newest[stream] > t_k or now >= t_k + self._settle

    def _resolve(self, t_k: float) -> AlignedRow | None:
        chosen: dict[str, tuple[float, Any]] = {}
        for stream in self.streams:
            sample = self._latest_at(stream, t_k)
            if sample is not None and t_k - sample[0] <= self._max_age[stream]:
                chosen[stream] = sample
            else:
                self._skipped[stream] += 1
        if len(chosen) < len(self.streams):
            self._skipped_ticks += 1
            return None
        self._rows += 1
        return AlignedRow(
            tick=self._tick,
            tick_time=t_k,
            values={s: v for s, (_, v) in chosen.items()},
            capture_times={s: t for s, (t, _) in chosen.items()},
        )

    def _latest_at(self, stream: str, t_k: float) -> tuple[float, Any] | None:
        """Latest sample at or before ``t_k``; prunes the older ones (never needed again)."""
        buf = self._buffers[stream]
        while len(buf) >= 2 and buf[1][0] <= t_k:
            buf.popleft()
        return buf[0] if buf and buf[0][0] <= t_k else None
