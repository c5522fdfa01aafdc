"""The episode being recorded, as the ``recorder`` actor sees it on the event loop (issue 16).

:class:`Episode` holds the loop-side state of one episode -- its grid aligner, tasks, rows handed
to the writer thread and rows dropped -- and the account the recorder gives of it: which streams
were too slow for the dataset's fps (warned about once per episode, see
``_frame_align.py`` "Streams slower than the grid") and the report sent with the save to the
writer thread, whose ``marks`` become columns of the episode's metadata row:

``rtrun/slow_streams``
    JSON object ``{feature key: measured rate in Hz}`` of the streams slower than
    ``SLOW_RATE_RATIO * fps`` (``"{}"`` when none). A string column so that every episode row
    has the same schema whatever its streams.
``rtrun/repeated_frames``
    Rows that repeat the previous row's sample of a stream, summed over the streams.

Both are written for every episode the recorder saves (``rtrun/dropped_frames`` is the
writer's own mark). LeRobot ignores columns it does not know.

Ticks skipped because a stream went stale (it stopped for longer than its hold bound) still
shorten the stored timeline; the "episode N saved" line names the streams and becomes a
warning when they exceed :data:`SQUEEZE_WARN_FRACTION` of the episode.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from typing import Any

from ._frame_align import FrameAligner

__all__ = ["SQUEEZE_WARN_FRACTION", "Episode", "saved_line"]

SQUEEZE_WARN_FRACTION = 0.05
"""Share of an episode's ticks skipped (stale streams) above which the saved line is a warning:
LeRobot's recording guidance reads ~5 % missing frames as overload, ~2 % as a start-up transient."""


@dataclass(slots=True, kw_only=True)
class Episode:
    """Loop-side state of the episode being recorded."""

    index: int
    t0: float
    aligner: FrameAligner
    tasks: list[tuple[float, str]]  # (since, task), in time order
    end: float = math.inf  # set by save: ticks after it are not recorded
    rows: int = 0  # rows handed to the writer thread
    dropped: int = 0  # rows dropped because the writer thread was behind
    warned: set[str] = field(default_factory=set)  # slow streams already warned about

    def task_at(self, t: float) -> str:
        """The task of the tick at ``t``."""
        return next(task for since, task in reversed(self.tasks) if since <= t)

    def newly_slow(self) -> dict[str, float]:
        """Streams found too slow for the grid since the last call: ``{key: rate Hz}``."""
        new = {k: r for k, r in self.aligner.statistics().slow.items() if k not in self.warned}
        self.warned.update(new)
        return new

    def report(self, *, save: bool) -> dict[str, Any]:
        """What the writer thread stores with the episode (``marks``) and adds to its summary."""
        stats = self.aligner.statistics()
        slow = {k: round(r, 2) for k, r in stats.slow.items()}
        return {
            "save_requested": save,
            "skipped": stats.skipped_ticks,
            "stale": {k: n for k, n in stats.skipped.items() if n},
            "repeated": stats.repeated,
            "slow_streams": slow,
            "marks": {
                "slow_streams": json.dumps(slow, sort_keys=True),
                "repeated_frames": sum(stats.repeated.values()),
            },
        }


def saved_line(summary: dict[str, Any]) -> tuple[int, str, tuple[Any, ...]]:
    """Level, format and arguments of the "episode N saved" line for a committed episode."""
    skipped = summary["skipped"]
    squeezed = skipped > SQUEEZE_WARN_FRACTION * (summary["frames"] + skipped)
    return (
        logging.WARNING if squeezed else logging.INFO,
        "episode %d saved: %d rows, %d dropped, %d ticks skipped (stale: %s), "
        "slow streams: %s (%.2f s to save)",
        (
            summary["index"],
            summary["frames"],
            summary["dropped"],
            skipped,
            summary["stale"] or "none",
            summary["slow_streams"] or "none",
            summary["save_s"],
        ),
    )
