"""Result types and internal state of :class:`~rtrun.actors._dataset_writer.DatasetWriter`.

Split out of the writer's module to keep it small; :mod:`rtrun.actors._dataset_writer`
re-exports the public ones (:class:`EpisodeSummary`, :class:`WriterStatistics`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _dataset_layout as layout
from ._dataset_video import StreamingEncoder

__all__ = ["EpisodeBuffer", "EpisodeSummary", "FileSlot", "WriterStatistics"]


@dataclass(frozen=True, slots=True, kw_only=True)
class EpisodeSummary:
    """What :meth:`DatasetWriter.save_episode` wrote."""

    episode_index: int
    """Index of the saved episode."""
    length: int
    """Frames (rows) written."""
    tasks: tuple[str, ...]
    """Task strings used in the episode, in order of first use."""
    dropped_frames: int
    """Rows refused because an encoder queue was full (the episode is marked with this count)."""
    dataset_from_index: int
    """Global index of the first row."""
    data_file: str
    """Data parquet holding the rows, relative to the dataset root."""
    video_files: dict[str, str]
    """Per video key, the mp4 holding the frames, relative to the dataset root."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WriterStatistics:
    """Snapshot for dashboards (``statistics()``)."""

    episodes: int
    """Episodes in the dataset."""
    frames: int
    """Rows in the dataset."""
    recording: int | None
    """Index of the episode being recorded, or None."""
    episode_frames: int
    """Rows accepted in the current episode."""
    episode_dropped: int
    """Rows dropped in the current episode."""
    queue_depths: dict[str, int] = field(default_factory=dict)
    """Images waiting per camera encoder."""


@dataclass(slots=True)
class FileSlot:
    """The (chunk, file) a stream of episodes is appended to; ``count`` rows/frames so far."""

    chunk: int
    file: int
    count: int = 0  # 0: the file does not exist yet

    def rel(self, template: str, **kw: Any) -> str:
        return template.format(chunk_index=self.chunk, file_index=self.file, **kw)

    def advance(self, chunks_size: int) -> None:
        self.chunk, self.file = layout.next_file(self.chunk, self.file, chunks_size)
        self.count = 0


@dataclass(slots=True)
class EpisodeBuffer:
    """The episode being recorded: its tasks, encoders, buffered vector rows and drops."""

    index: int
    task: str
    tasks: list[str]
    encoders: dict[str, StreamingEncoder]
    rows: dict[str, list[np.ndarray]]
    task_ids: list[int] = field(default_factory=list)
    dropped: int = 0

    @property
    def frames(self) -> int:
        return len(self.task_ids)
