"""The recorder's writer thread: owns a ``DatasetWriter`` off the event loop (issue 7).

Theory of operation
-------------------
``RecorderActor`` (``recorder.py``) never calls the writer itself: it queues commands --
:class:`Row`, :class:`StartEpisode`, :class:`EndEpisode` (save or discard) and :class:`Close`,
small frozen dataclasses -- for one dedicated thread that applies them in order (``info``: the
loop side's episode report, merged into the summary; its ``marks`` become ``rtrun/<name>``
columns of the saved episode's metadata row). The queue is
bounded by counting, not by blocking: the event loop counts what it submitted, the thread
counts what it consumed (each counter has one writer, so no lock), and
:meth:`WriterThread.submit_row` refuses a row when ``capacity`` rows are pending -- the caller
drops and counts it. Episode commands are bounded the same way (:data:`CONTROL_BACKLOG`).

The thread publishes a :class:`WriterSnapshot` after every command (one attribute assignment,
atomic under the GIL) for the actor's status. Each episode it ended -- saved, i.e. **committed**
on disk (``save_episode`` returned), or discarded -- is appended to a deque the event loop drains
with :meth:`WriterThread.ended` (``deque`` append/popleft are thread-safe): the recorder logs
"episode N saved" from there, never when it merely queued the save, so a SIGKILL right after
that line cannot lose the episode. A writer exception ends the thread; it is kept in
:attr:`WriterThread.error` for the actor to raise (the supervisor decides about a restart). The
thread always closes the writer on exit, which discards an unsaved episode and releases the
dataset lock so a restarted recorder can reopen it.

Design decisions:
- A thread, not a process. Encoding (PyAV/FFmpeg) releases the GIL for most of its work, and a
  process would need a pickle-free frame transport (shared memory) for 55 MB/s of images. On a
  2-core machine the control loop's tail latency is set by CPU contention with the encoders
  (a sleep probe sees p99 ~3 ms with the encoders in a thread *or* in another process), which
  a process does not remove; ``benchmarks/recorder.py`` measures it.
- The writer thread drops real-time scheduling (:func:`_best_effort_scheduling`) so that
  ``chrt -f 50 rtrun run ...`` makes the control loop preempt the encoders (threads inherit the
  policy of their creator, so the encoder threads time-share too).
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._dataset_writer import DatasetWriter

__all__ = [
    "CONTROL_BACKLOG",
    "Close",
    "EndEpisode",
    "Row",
    "StartEpisode",
    "WriterCommand",
    "WriterSnapshot",
    "WriterThread",
]

CONTROL_BACKLOG = 16
"""Episode commands waiting for the writer thread; more means a stuck writer (rejected, counted)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    """One aligned row for the current episode (bounded by ``capacity``)."""

    row: dict[str, Any]
    """Non-image feature values of the row."""
    images: dict[str, np.ndarray]
    """Image features of the row, by feature key."""
    task: str
    """Task of the row (a change calls ``DatasetWriter.set_task`` first)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StartEpisode:
    """Start a new episode."""

    task: str
    """Task of its first rows."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EndEpisode:
    """Save (commit) or discard the current episode; nothing to do when none is recording."""

    save: bool
    """True: save the episode (when it has rows); False: discard it."""
    dropped: int = 0
    """Rows the loop side dropped in this episode (added to the writer's own count)."""
    info: dict[str, Any] | None = None
    """The loop side's episode report, merged into the summary (``marks`` go to the metadata)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Close(EndEpisode):
    """End the current episode like :class:`EndEpisode`, then stop the thread (never refused)."""


WriterCommand = Row | StartEpisode | EndEpisode
"""What the writer thread consumes (:class:`Close` is an :class:`EndEpisode`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WriterSnapshot:
    """What the writer thread last reported (read by the event loop for the status)."""

    episodes: int
    """Episodes in the dataset."""
    frames: int
    """Rows in the dataset."""
    recording: int | None = None
    """Episode the writer is recording, or None."""
    episode_frames: int = 0
    """Rows accepted by the writer in that episode."""
    episode_dropped: int = 0
    """Rows the writer dropped in that episode (an encoder queue was full)."""
    last_episode: dict[str, Any] | None = None
    """Summary of the last episode saved or discarded by this run."""


class WriterThread:
    """Owns the :class:`DatasetWriter` in one dedicated thread, fed by a bounded command queue.

    The loop side only calls :meth:`submit_row`/:meth:`submit`/:meth:`pending_rows`; the
    in/out counters are each written by one thread, so no lock is needed to bound the queue.
    """

    def __init__(self, writer: DatasetWriter, *, capacity: int, name: str) -> None:
        self._writer = writer
        self._queue: queue.SimpleQueue[WriterCommand] = queue.SimpleQueue()
        self._capacity = capacity
        self._rows_in = self._rows_out = self._cmds_in = self._cmds_out = 0
        self._task = ""
        self.error: BaseException | None = None
        self.snapshot = WriterSnapshot(episodes=writer.total_episodes, frames=writer.total_frames)
        self._ended: deque[dict[str, Any]] = deque()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def pending_rows(self) -> int:
        """Rows submitted and not yet handed to the writer."""
        return self._rows_in - self._rows_out

    def submit_row(self, row: dict[str, Any], images: dict[str, np.ndarray], task: str) -> bool:
        """Queue one row; False (nothing queued) when :attr:`capacity` rows are pending."""
        if self.pending_rows() >= self._capacity:
            return False
        self._rows_in += 1
        self._queue.put(Row(row=row, images=images, task=task))
        return True

    def submit(self, command: StartEpisode | EndEpisode) -> bool:
        """Queue an episode command; False if backlogged (a :class:`Close` is always queued)."""
        if not isinstance(command, Close) and self._cmds_in - self._cmds_out >= CONTROL_BACKLOG:
            return False
        self._cmds_in += 1
        self._queue.put(command)
        return True

    def ended(self) -> list[dict[str, Any]]:
        """Summaries of the episodes saved (committed) or discarded since the last call."""
        out = []
        while self._ended:
            out.append(self._ended.popleft())
        return out

    def join(self, timeout: float) -> bool:
        """Wait (blocking) for the thread to end; True if it did."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # ---------------------------------------------------------------- thread side

    def _serve(self) -> None:
        writer = self._writer
        _best_effort_scheduling()
        try:
            while True:
                command = self._queue.get()
                try:
                    self._handle(command)
                    if isinstance(command, Close):
                        return
                finally:
                    if isinstance(command, Row):
                        self._rows_out += 1
                    else:
                        self._cmds_out += 1
                self._publish()
        except BaseException as exc:  # reported to the event loop, which raises it
            self.error = exc
        finally:
            try:
                writer.close()  # discards an unsaved episode, releases the dataset lock
            except Exception as exc:  # reported like any other writer failure
                self.error = self.error or exc

    def _handle(self, command: WriterCommand) -> None:
        if isinstance(command, Row):
            if command.task != self._task:
                self._writer.set_task(command.task)
                self._task = command.task
            self._writer.add_frame(command.row, command.images)  # False: dropped, counted by the writer
        elif isinstance(command, StartEpisode):
            self._task = command.task
            self._writer.start_episode(command.task)
        else:
            self._end_episode(command.save, command.dropped, command.info)

    def _end_episode(self, save: bool, dropped: int, info: dict[str, Any] | None) -> None:
        stats = self._writer.statistics()
        if stats.recording is None:
            return
        info = dict(info or {})
        marks = info.pop("marks", None)
        summary: dict[str, Any] = {
            "index": stats.recording,
            "frames": stats.episode_frames,
            "dropped": stats.episode_dropped + dropped,
            **info,
        }
        if save and stats.episode_frames > 0:
            t0 = time.perf_counter()
            self._writer.save_episode(marks=marks)
            summary.update(saved=True, save_s=round(time.perf_counter() - t0, 3))
        else:
            self._writer.discard_episode()
            summary.update(saved=False)
        self.snapshot = WriterSnapshot(
            episodes=self._writer.total_episodes, frames=self._writer.total_frames, last_episode=summary
        )
        self._ended.append(summary)  # after the commit: the loop may now say "saved"

    def _publish(self) -> None:
        s = self._writer.statistics()
        self.snapshot = WriterSnapshot(
            episodes=s.episodes,
            frames=s.frames,
            recording=s.recording,
            episode_frames=s.episode_frames,
            episode_dropped=s.episode_dropped,
            last_episode=self.snapshot.last_episode,
        )


def _best_effort_scheduling() -> None:
    """Run the calling thread (and the encoder threads it creates, which inherit it) under the
    normal time-sharing policy even when the process was started real-time (``chrt -f 50 rtrun
    run ...``): a real-time control loop must not compete with video encoding at equal priority.
    No-op where the OS has no such API or the thread already time-shares."""
    if not hasattr(os, "sched_getscheduler"):
        return
    if os.sched_getscheduler(0) in (os.SCHED_FIFO, os.SCHED_RR):
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
