"""Synchronous LeRobotDataset v3 writer: episode buffer -> parquet + mp4 + meta files.

Runs in a worker thread (or process) owned by the async ``recorder`` actor; no anyio here.
pyarrow and PyAV are imported lazily so ``import rtrun.actors`` stays light.

Usage::

    writer = DatasetWriter.create(root, fps=30, features=features, robot_type="so101_follower")
    writer.start_episode("pick the cube")
    for row, images in frames:          # one call per dataset tick
        writer.add_frame(row, images)   # False: dropped (encoder queue full), counted
    summary = writer.save_episode()     # the dataset on disk is now complete and loadable
    writer.close()

Theory of operation
-------------------
*Layout.* Exactly LeRobot v3 (``shared/reference/dataset-v3.md``): consolidated data parquet
files, consolidated mp4 files (episodes back to back), ``meta/episodes`` parquet files,
``meta/tasks.parquet``, ``meta/info.json`` and ``meta/stats.json`` plus per-episode
``stats/<feature>/<stat>`` columns. Files rotate at LeRobot's size limits (100 MB data,
200 MB video, 1000 files per chunk). A reopened dataset continues in the *next* files, as
LeRobot does, so files written by another tool are never modified.

*Timestamps.* ``timestamp = frame_index / fps`` exactly (float32). Real capture times are the
caller's business: the recorder stores them in an ordinary float64 feature (``capture_time``,
see ``_frame_align.py``), never in ``timestamp``.

*Streaming.* Vector rows are buffered in RAM (a few hundred bytes per frame); images go straight
to one encoder thread per camera behind a bounded queue (``encoder_queue_size``). If any camera's
queue is full, the whole row is dropped -- rows and video frames stay one-to-one -- counted in
:meth:`statistics` and stored with the episode (``rtrun/dropped_frames`` column,
:class:`EpisodeSummary`). A dropped row means the next rows sit one grid step early; the
recorder's ``capture_time`` column shows the gap.

*Crash safety.* See ``_dataset_commit.py``: every ``save_episode`` publishes through a redo
journal, so after ``save_episode`` returns the dataset is complete and loadable (no finalize),
and after a SIGKILL ``open`` rolls a committed save forward or discards the partial episode.
``close()`` discards an unsaved episode.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from . import _dataset_commit as commit
from . import _dataset_layout as layout
from ._dataset_layout import (
    DatasetError,
    EpisodeStateError,
    FeatureMismatchError,
    FrameError,
)
from ._dataset_stats import aggregate_stats, stats_to_json, vector_stats
from ._dataset_video import StreamingEncoder, VideoOptions, concat_videos, probe_video
from ._dataset_writer_state import EpisodeBuffer, EpisodeSummary, FileSlot, WriterStatistics

__all__ = ["DatasetWriter", "EpisodeSummary", "WriterStatistics"]

ENCODER_QUEUE_SIZE = 30
"""Images buffered per camera before rows are dropped: ~1 s at 30 fps (LeRobot's
``encoder_queue_maxsize`` default)."""

_MIB = 1024 * 1024


class DatasetWriter:
    """Writes episodes of a LeRobotDataset v3 on disk. Not thread-safe: one caller thread."""

    def __init__(self, root: Path, info: dict[str, Any], options: VideoOptions, **kw: Any) -> None:
        """Use :meth:`create` or :meth:`open`."""
        self.root = root
        self.recovery: commit.RecoveryReport = kw.pop("recovery", commit.RecoveryReport())
        """What opening the dataset found (partial episode discarded, commit rolled forward)."""
        self._lock_fd: int = kw.pop("lock_fd")
        self._queue_size: int = kw.pop("encoder_queue_size")
        self._info = info
        self._options = options
        self._features = layout.normalize_features(info["features"], from_info=True)
        self._videos = layout.video_keys(self._features)
        self._fps = int(info["fps"])
        self._tasks: dict[str, int] = kw.pop("tasks", {})
        self._stats: dict[str, dict[str, np.ndarray]] = kw.pop("stats", {})
        self._episodes = FileSlot(*kw.pop("episodes_slot", (0, 0)))
        self._data = FileSlot(*kw.pop("data_slot", (0, 0)))
        video_slots: dict[str, tuple[int, int]] = kw.pop("video_slots", {})
        self._video_slots = {k: FileSlot(*video_slots.get(k, (0, 0))) for k in self._videos}
        self._episode: EpisodeBuffer | None = None
        self._closed = False
        self._broken = False

    # ---------------------------------------------------------------- construction

    @classmethod
    def create(
        cls,
        root: str | os.PathLike[str],
        *,
        fps: int,
        features: Mapping[str, Mapping[str, Any]],
        robot_type: str | None = None,
        video_options: VideoOptions | None = None,
        encoder_queue_size: int = ENCODER_QUEUE_SIZE,
    ) -> DatasetWriter:
        """Create a new, empty dataset at ``root`` (which must not exist or be empty)."""
        root = Path(root)
        if isinstance(fps, bool) or not isinstance(fps, int) or fps <= 0:
            raise layout.FeatureSpecError(f"fps must be a positive int (LeRobot stores an int), got {fps!r}")
        if root.exists() and any(root.iterdir()):
            raise DatasetError(f"{root} exists and is not empty; use DatasetWriter.open to append")
        info = layout.new_info(fps=fps, features=layout.normalize_features(features), robot_type=robot_type)
        root.mkdir(parents=True, exist_ok=True)
        lock_fd = commit.lock(root)
        layout.atomic_write_bytes(root / layout.INFO_PATH, layout.json_bytes(info))
        options = video_options or VideoOptions()
        return cls(root, info, options, lock_fd=lock_fd, encoder_queue_size=encoder_queue_size)

    @classmethod
    def open(
        cls,
        root: str | os.PathLike[str],
        *,
        features: Mapping[str, Mapping[str, Any]] | None = None,
        video_options: VideoOptions | None = None,
        encoder_queue_size: int = ENCODER_QUEUE_SIZE,
    ) -> DatasetWriter:
        """Open an existing dataset to append episodes (resume).

        Recovers from a crash first (see ``recovery``). ``features``, when given, must equal the
        dataset's (else :class:`FeatureMismatchError` lists every difference); ``video_options``
        must equal the recorded ones (else :class:`VideoOptionsMismatchError`).
        """
        root = Path(root)
        if not (root / layout.INFO_PATH).is_file():
            raise DatasetError(f"no dataset at {root} ({layout.INFO_PATH} missing); use create")
        lock_fd = commit.lock(root)
        try:
            return cls._open_locked(root, lock_fd, features, video_options, encoder_queue_size)
        except BaseException:
            os.close(lock_fd)
            raise

    @classmethod
    def _open_locked(
        cls,
        root: Path,
        lock_fd: int,
        features: Mapping[str, Mapping[str, Any]] | None,
        video_options: VideoOptions | None,
        queue_size: int,
    ) -> DatasetWriter:
        report = commit.recover(root)
        info = json.loads((root / layout.INFO_PATH).read_text())
        if info.get("codebase_version") != layout.CODEBASE_VERSION:
            raise DatasetError(f"{root}: codebase_version {info.get('codebase_version')!r} is not v3.0")
        have = layout.normalize_features(info["features"], from_info=True)
        if features is not None:
            diffs = layout.compare_features(have, layout.normalize_features(features))
            if diffs:
                raise FeatureMismatchError(root, diffs)
        options = commit.resolve_options(root, info, video_options)
        state = commit.load_state(root, info)
        return cls(
            root, info, options, lock_fd=lock_fd, encoder_queue_size=queue_size, recovery=report, **state
        )

    # ---------------------------------------------------------------- properties

    @property
    def fps(self) -> int:
        """Frames per second of the dataset."""
        return self._fps

    @property
    def features(self) -> dict[str, dict[str, Any]]:
        """The user features (normalized, without the writer-filled ones)."""
        return {k: dict(v) for k, v in self._features.items()}

    @property
    def video_options(self) -> VideoOptions:
        """Encoder settings in use."""
        return self._options

    @property
    def total_episodes(self) -> int:
        """Episodes saved in the dataset."""
        return int(self._info["total_episodes"])

    @property
    def total_frames(self) -> int:
        """Rows saved in the dataset."""
        return int(self._info["total_frames"])

    def statistics(self) -> WriterStatistics:
        """A snapshot of counters for telemetry."""
        ep = self._episode
        return WriterStatistics(
            episodes=self.total_episodes,
            frames=self.total_frames,
            recording=ep.index if ep else None,
            episode_frames=ep.frames if ep else 0,
            episode_dropped=ep.dropped if ep else 0,
            queue_depths={k: e.depth() for k, e in ep.encoders.items()} if ep else {},
        )

    # ---------------------------------------------------------------- episodes

    def start_episode(self, task: str) -> int:
        """Begin recording episode ``total_episodes`` with ``task``; returns its index."""
        self._check_open()
        if self._episode is not None:
            raise EpisodeStateError(f"episode {self._episode.index} is still recording; save or discard it")
        _check_task(task)
        index = self.total_episodes
        ep_dir = self.root / commit.EPISODE_DIR
        shutil.rmtree(ep_dir, ignore_errors=True)
        ep_dir.mkdir(parents=True)
        marker = {"episode_index": index, "task": task, "fps": self._fps}
        layout.atomic_write_bytes(self.root / commit.EPISODE_MARKER, json.dumps(marker).encode())
        encoders: dict[str, StreamingEncoder] = {}
        try:
            for key in self._videos:
                h, w, _ = self._features[key]["shape"]
                encoders[key] = StreamingEncoder(
                    ep_dir / f"{key}.mp4",
                    name=key,
                    fps=self._fps,
                    width=w,
                    height=h,
                    options=self._options,
                    queue_size=self._queue_size,
                )
        except BaseException:
            for enc in encoders.values():
                enc.abort()
            shutil.rmtree(ep_dir, ignore_errors=True)
            raise
        rows: dict[str, list[np.ndarray]] = {k: [] for k in self._features if k not in encoders}
        self._episode = EpisodeBuffer(index=index, task=task, tasks=[task], encoders=encoders, rows=rows)
        return index

    def set_task(self, task: str) -> None:
        """Use ``task`` for the following frames of the current episode."""
        ep = self._require_episode()
        _check_task(task)
        if task not in ep.tasks:
            ep.tasks.append(task)
        ep.task = task

    def add_frame(self, row: Mapping[str, Any], images: Mapping[str, np.ndarray] | None = None) -> bool:
        """Append one row (every vector feature) and its images (every video feature).

        Returns False when the row was dropped because an encoder queue was full (counted).
        Raises :class:`FrameError` for a row that does not match the features, and the encoder's
        exception (as :class:`DatasetError`) if a camera encoder failed.
        """
        ep = self._require_episode()
        images = images or {}
        values = self._convert_row(row)
        frames = self._convert_images(images)
        for key, enc in ep.encoders.items():
            if enc.error is not None:
                raise DatasetError(f"video encoder for {key!r} failed: {enc.error}") from enc.error
        if not all(enc.has_room() for enc in ep.encoders.values()):
            ep.dropped += 1
            return False
        for key, image in frames.items():
            ep.encoders[key].submit(image)
        for key, value in values.items():
            ep.rows[key].append(value)
        ep.task_ids.append(ep.tasks.index(ep.task))
        return True

    def discard_episode(self) -> None:
        """Drop the current episode (nothing of it reaches the dataset)."""
        ep = self._require_episode()
        self._episode = None
        try:
            for enc in ep.encoders.values():
                enc.abort()
        finally:
            shutil.rmtree(self.root / commit.EPISODE_DIR, ignore_errors=True)

    def save_episode(self, *, marks: Mapping[str, int | float | str] | None = None) -> EpisodeSummary:
        """Finish the current episode and publish it; the dataset is loadable on return.

        ``marks`` become ``rtrun/<name>`` columns of the episode's metadata row (e.g. the
        recorder's ``slow_streams``); pass the same names for every episode of a dataset.
        """
        ep = self._require_episode()
        if ep.frames == 0:
            raise EpisodeStateError(f"episode {ep.index} has no frames; add frames or discard it")
        self._episode = None
        try:
            return self._save(ep, marks or {})
        except BaseException:
            for enc in ep.encoders.values():
                if enc.error is None:
                    enc.abort()
            if (self.root / commit.JOURNAL).exists():
                # Committed but not fully published: only a reopen may roll it forward.
                self._broken = True
            else:
                shutil.rmtree(self.root / commit.COMMIT_DIR, ignore_errors=True)
                shutil.rmtree(self.root / commit.EPISODE_DIR, ignore_errors=True)
            raise

    def close(self) -> None:
        """Discard an unsaved episode and release the dataset lock. Idempotent."""
        if self._closed:
            return
        try:
            if self._episode is not None:
                self.discard_episode()
        finally:
            self._closed = True
            os.close(self._lock_fd)

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- internals

    def _check_open(self) -> None:
        if self._closed:
            raise EpisodeStateError("the writer is closed")
        if self._broken:
            raise EpisodeStateError(
                "a save failed after its commit point; close and reopen the dataset "
                "(DatasetWriter.open rolls the commit forward)"
            )

    def _require_episode(self) -> EpisodeBuffer:
        self._check_open()
        if self._episode is None:
            raise EpisodeStateError("no episode is recording; call start_episode(task) first")
        return self._episode

    def _convert_row(self, row: Mapping[str, Any]) -> dict[str, np.ndarray]:
        expected = [k for k in self._features if k not in self._videos]
        if set(row) != set(expected):
            missing = sorted(set(expected) - set(row))
            extra = sorted(set(row) - set(expected))
            raise FrameError(
                f"row keys must be exactly the vector features: missing {missing}, extra {extra}"
            )
        out = {}
        for key in expected:
            spec = self._features[key]
            try:
                value = np.asarray(row[key], dtype=spec["dtype"]).reshape(-1)
            except (TypeError, ValueError) as exc:
                raise FrameError(f"feature {key!r}: cannot convert to {spec['dtype']}: {exc}") from exc
            if value.shape[0] != spec["shape"][0]:
                raise FrameError(f"feature {key!r}: {value.shape[0]} values, shape is {spec['shape']}")
            out[key] = value
        return out

    def _convert_images(self, images: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if set(images) != set(self._videos):
            raise FrameError(
                f"images must be exactly the video features {self._videos}, got {sorted(images)}"
            )
        out = {}
        for key, image in images.items():
            shape = tuple(self._features[key]["shape"])
            if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.shape != shape:
                got = (getattr(image, "shape", None), getattr(image, "dtype", type(image).__name__))
                raise FrameError(f"image {key!r} must be a {shape} uint8 RGB array, got {got}")
            # The encoder thread reads it later: copy unless the producer froze it (read-only).
            out[key] = np.ascontiguousarray(image) if not image.flags.writeable else image.copy()
        return out

    def _save(self, ep: EpisodeBuffer, marks: Mapping[str, int | float | str]) -> EpisodeSummary:
        counts = {}
        for key, enc in ep.encoders.items():
            try:
                counts[key] = enc.finish()
            except Exception as exc:
                raise DatasetError(f"video encoder for {key!r} failed: {exc}") from exc
        for key, n in counts.items():
            if n != ep.frames:
                raise DatasetError(f"internal: {key!r} encoded {n} frames for {ep.frames} rows")
        staging = self.root / commit.COMMIT_DIR
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        tasks = dict(self._tasks)
        for task in ep.tasks:
            tasks.setdefault(task, len(tasks))
        from_index = self.total_frames
        cols = self._columns(ep, tasks, from_index)
        ep_stats = self._episode_stats(ep, cols)
        moves: list[tuple[str, str]] = []
        row: dict[str, Any] = {"episode_index": ep.index, "tasks": list(ep.tasks), "length": ep.frames}
        data_slot = self._stage_data(ep, cols, staging, moves, row)
        video_slots = {k: self._stage_video(k, ep, staging, moves, row) for k in self._videos}
        row["dataset_from_index"], row["dataset_to_index"] = from_index, from_index + ep.frames
        row["rtrun/dropped_frames"] = ep.dropped
        row.update({f"rtrun/{name}": value for name, value in marks.items()})
        row.update({f"stats/{f}/{s}": v for f, st in stats_to_json(ep_stats).items() for s, v in st.items()})
        meta_slot = self._stage_episode_row(row, staging, moves)
        info = self._next_info(ep, tasks, staging)
        stats = aggregate_stats([self._stats, ep_stats]) if self._stats else ep_stats
        self._stage_meta(tasks, stats, info, staging, moves, tasks_changed=len(tasks) != len(self._tasks))
        commit.commit(self.root, episode_index=ep.index, moves=moves)
        self._info, self._tasks, self._stats = info, tasks, stats
        self._data, self._episodes, self._video_slots = data_slot, meta_slot, video_slots
        return EpisodeSummary(
            episode_index=ep.index,
            length=ep.frames,
            tasks=tuple(ep.tasks),
            dropped_frames=ep.dropped,
            dataset_from_index=from_index,
            data_file=data_slot.rel(layout.DATA_PATH),
            video_files={k: s.rel(layout.VIDEO_PATH, video_key=k) for k, s in video_slots.items()},
        )

    def _columns(self, ep: EpisodeBuffer, tasks: dict[str, int], start: int) -> dict[str, np.ndarray]:
        """Every non-video column of the episode, writer-filled ones included."""
        frame_index = np.arange(ep.frames, dtype=np.int64)
        cols = {k: np.stack(v) for k, v in ep.rows.items()}
        cols["timestamp"] = (frame_index / self._fps).astype(np.float32)
        cols["frame_index"] = frame_index
        cols["episode_index"] = np.full(ep.frames, ep.index, dtype=np.int64)
        cols["index"] = frame_index + start
        cols["task_index"] = np.array([tasks[ep.tasks[i]] for i in ep.task_ids], dtype=np.int64)
        return cols

    def _episode_stats(self, ep: EpisodeBuffer, cols: dict[str, np.ndarray]) -> dict[str, Any]:
        stats = {k: vector_stats(v.reshape(ep.frames, -1)) for k, v in cols.items()}
        for key, enc in ep.encoders.items():
            if (image_stats := enc.stats.result()) is not None:
                stats[key] = image_stats
        return stats

    def _stage_data(
        self,
        ep: EpisodeBuffer,
        cols: dict[str, np.ndarray],
        staging: Path,
        moves: list[tuple[str, str]],
        row: dict[str, Any],
    ) -> FileSlot:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = layout.data_table(self._info["features"], cols)
        slot = FileSlot(self._data.chunk, self._data.file, self._data.count)
        final = self.root / slot.rel(layout.DATA_PATH)
        if slot.count:
            size = final.stat().st_size
            limit = self._info["data_files_size_in_mb"] * _MIB
            if size + size / slot.count * ep.frames >= limit:
                slot.advance(self._info["chunks_size"])
            else:
                table = pa.concat_tables([pq.read_table(final), table]).replace_schema_metadata(
                    table.schema.metadata
                )
        staged = staging / "data.parquet"
        pq.write_table(table, staged, compression="snappy", use_dictionary=True)
        commit.fsync_file(staged)
        moves.append((str(staged.relative_to(self.root)), slot.rel(layout.DATA_PATH)))
        slot.count += ep.frames
        row["data/chunk_index"], row["data/file_index"] = slot.chunk, slot.file
        return slot

    def _stage_video(
        self, key: str, ep: EpisodeBuffer, staging: Path, moves: list[tuple[str, str]], row: dict[str, Any]
    ) -> FileSlot:
        episode_mp4 = self.root / commit.EPISODE_DIR / f"{key}.mp4"
        current = self._video_slots[key]
        slot = FileSlot(current.chunk, current.file, current.count)
        final = self.root / slot.rel(layout.VIDEO_PATH, video_key=key)
        staged = staging / f"{key}.mp4"
        if slot.count:
            limit = self._info["video_files_size_in_mb"] * _MIB
            if final.stat().st_size + episode_mp4.stat().st_size >= limit:
                slot.advance(self._info["chunks_size"])
        if slot.count:
            concat_videos([final, episode_mp4], staged)
        else:
            os.replace(episode_mp4, staged)
        commit.fsync_file(staged)
        moves.append((str(staged.relative_to(self.root)), slot.rel(layout.VIDEO_PATH, video_key=key)))
        prefix = f"videos/{key}/"
        row[prefix + "chunk_index"], row[prefix + "file_index"] = slot.chunk, slot.file
        row[prefix + "from_timestamp"] = slot.count / self._fps
        row[prefix + "to_timestamp"] = (slot.count + ep.frames) / self._fps
        slot.count += ep.frames
        return slot

    def _stage_episode_row(
        self, row: dict[str, Any], staging: Path, moves: list[tuple[str, str]]
    ) -> FileSlot:
        import pyarrow as pa
        import pyarrow.parquet as pq

        slot = FileSlot(self._episodes.chunk, self._episodes.file, self._episodes.count)
        final = self.root / slot.rel(layout.EPISODES_PATH)
        if slot.count and final.stat().st_size >= self._info["data_files_size_in_mb"] * _MIB:
            slot.advance(self._info["chunks_size"])
        row["meta/episodes/chunk_index"], row["meta/episodes/file_index"] = slot.chunk, slot.file
        table = pa.Table.from_pylist([row])
        if slot.count:
            table = pa.concat_tables([pq.read_table(final), table], promote_options="permissive")
        staged = staging / "episodes.parquet"
        pq.write_table(table, staged, compression="snappy")
        commit.fsync_file(staged)
        moves.append((str(staged.relative_to(self.root)), slot.rel(layout.EPISODES_PATH)))
        slot.count += 1
        return slot

    def _next_info(self, ep: EpisodeBuffer, tasks: dict[str, int], staging: Path) -> dict[str, Any]:
        info = json.loads(json.dumps(self._info))
        info["total_episodes"] += 1
        info["total_frames"] += ep.frames
        info["total_tasks"] = len(tasks)
        info["splits"] = {"train": f"0:{info['total_episodes']}"}
        for key in self._videos:
            if "info" not in info["features"][key]:
                probe = probe_video(staging / f"{key}.mp4")
                info["features"][key]["info"] = {**probe.to_info(), **self._options.to_info()}
        return info

    def _stage_meta(
        self,
        tasks: dict[str, int],
        stats: dict[str, dict[str, np.ndarray]],
        info: dict[str, Any],
        staging: Path,
        moves: list[tuple[str, str]],
        *,
        tasks_changed: bool,
    ) -> None:
        import pyarrow.parquet as pq

        if tasks_changed or not (self.root / layout.TASKS_PATH).exists():
            pq.write_table(layout.tasks_table(tasks), staging / "tasks.parquet")
            commit.fsync_file(staging / "tasks.parquet")
            moves.append((f"{commit.COMMIT_DIR}/tasks.parquet", layout.TASKS_PATH))
        for name, final, data in (
            ("stats.json", layout.STATS_PATH, stats_to_json(stats)),
            ("info.json", layout.INFO_PATH, info),
        ):
            layout.atomic_write_bytes(staging / name, layout.json_bytes(data))
            moves.append((f"{commit.COMMIT_DIR}/{name}", final))


def _check_task(task: object) -> None:
    if not isinstance(task, str) or not task:
        raise EpisodeStateError(f"task must be a non-empty string, got {task!r}")
