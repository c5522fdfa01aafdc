"""Crash-safe episode commits for the LeRobotDataset v3 writer (redo journal + staging).

Theory of operation
-------------------
LeRobot's loader reads every ``data/*/*.parquet`` and ``meta/episodes/*/*.parquet`` it finds and
trusts ``meta/info.json``; no single rename can publish an episode. So the writer keeps all
unfinished work under a hidden folder the loader never looks at, ``<root>/.rtrun/``::

    .rtrun/lock              flock()ed while a writer has the dataset open
    .rtrun/episode/          the episode being recorded: episode.json + one mp4 per camera
    .rtrun/commit/           complete new versions of the files an episode save changes
    .rtrun/commit/journal.json   the commit record (written last, atomically)

``save_episode`` first builds *complete new versions* of every file it changes in
``.rtrun/commit/`` (a data parquet = old rows + new rows, an mp4 = old stream + new episode,
the episodes parquet, tasks, stats, info), fsyncs them, then writes ``journal.json`` (the commit
point: write-to-temp, fsync, rename), then moves each staged file over its final path with
``os.replace`` (atomic per file), ``info.json`` last. Then it removes the episode folder and the
journal.

Opening also takes an exclusive ``flock`` on ``.rtrun/lock`` (released by the kernel even on
SIGKILL, so a crashed writer never leaves a stale lock) and computes where a resumed session
continues (:func:`load_state`: the files after the last episode's, as LeRobot does).

Recovery (on ``DatasetWriter.open``) is deterministic:

- ``journal.json`` present: the save had committed -> *roll forward*: replay the moves whose
  staged file still exists (a move already done has no staged file left), then clean up.
- no journal: whatever is in ``.rtrun/commit/`` is an unfinished save -> deleted.
- ``.rtrun/episode/`` present after that: an episode was being recorded (or saved but not
  committed) when the process died -> it is *discarded* (its rows lived in RAM only) and reported.

Appends only ever extend files (the new parquet holds the old rows first, the new mp4 the old
stream first), so even between two ``os.replace`` calls every episode already in the metadata
still reads the same rows and frames: earlier episodes load at every instant, without any
finalize step.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import _dataset_layout as layout
from ._dataset_layout import atomic_write_bytes, fsync_dir
from ._dataset_stats import stats_from_json
from ._dataset_video import VideoOptions

__all__ = ["RecoveryReport", "commit", "load_state", "lock", "recover", "resolve_options"]

STAGING_DIR = ".rtrun"
EPISODE_DIR = f"{STAGING_DIR}/episode"
COMMIT_DIR = f"{STAGING_DIR}/commit"
JOURNAL = f"{COMMIT_DIR}/journal.json"
EPISODE_MARKER = f"{EPISODE_DIR}/episode.json"
LOCK_FILE = f"{STAGING_DIR}/lock"


@dataclass(frozen=True, slots=True, kw_only=True)
class RecoveryReport:
    """What :func:`recover` found and did when a dataset was opened."""

    rolled_forward_episode: int | None = None
    """Episode whose committed save was completed (the process died while publishing it)."""
    discarded_episode: int | None = None
    """Episode that was being recorded (or saved, uncommitted) when the process died; removed."""
    removed_uncommitted_files: int = 0
    """Staged files of an uncommitted save that were deleted."""

    @property
    def clean(self) -> bool:
        """True when the previous writer had closed cleanly."""
        return (
            self.rolled_forward_episode is None
            and self.discarded_episode is None
            and self.removed_uncommitted_files == 0
        )


def fsync_file(path: Path) -> None:
    """Flush a written file to stable storage."""
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def _apply(root: Path, moves: list[list[str]]) -> None:
    for staged_rel, final_rel in moves:
        staged, final = root / staged_rel, root / final_rel
        if not staged.exists():
            continue  # already moved before a crash (a replay is idempotent)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, final)
        fsync_dir(final.parent)


def _finish(root: Path) -> None:
    shutil.rmtree(root / EPISODE_DIR, ignore_errors=True)
    (root / JOURNAL).unlink(missing_ok=True)
    shutil.rmtree(root / COMMIT_DIR, ignore_errors=True)


def commit(root: Path, *, episode_index: int, moves: list[tuple[str, str]]) -> None:
    """Publish staged files: journal first, then the moves in order, then clean up.

    ``moves`` are ``(staged, final)`` paths relative to ``root``; staged files must already be
    complete and fsynced. Put ``meta/info.json`` last.
    """
    record = {"episode_index": episode_index, "moves": [list(m) for m in moves]}
    atomic_write_bytes(root / JOURNAL, json.dumps(record).encode())
    _apply(root, record["moves"])
    _finish(root)


def _episode_marker_index(root: Path) -> int | None:
    try:
        return int(json.loads((root / EPISODE_MARKER).read_text())["episode_index"])
    except (OSError, ValueError, KeyError, TypeError):
        return -1  # the folder exists but its marker is missing/torn: still a partial episode


def recover(root: Path) -> RecoveryReport:
    """Bring ``root`` back to its last committed state (see the module docstring)."""
    rolled = discarded = None
    removed = 0
    journal = root / JOURNAL
    if journal.exists():
        record = json.loads(journal.read_text())
        _apply(root, record["moves"])
        rolled = int(record["episode_index"])
        _finish(root)
    elif (root / COMMIT_DIR).exists():
        removed = sum(1 for p in (root / COMMIT_DIR).rglob("*") if p.is_file())
        shutil.rmtree(root / COMMIT_DIR)
    if (root / EPISODE_DIR).exists():
        discarded = _episode_marker_index(root)
        shutil.rmtree(root / EPISODE_DIR)
    return RecoveryReport(
        rolled_forward_episode=rolled, discarded_episode=discarded, removed_uncommitted_files=removed
    )


def lock(root: Path) -> int:
    path = root / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise layout.DatasetLockedError(f"{root} is open in another DatasetWriter (lock {path})") from None
    return fd


def resolve_options(root: Path, info: dict[str, Any], requested: VideoOptions | None) -> VideoOptions:
    recorded = next(
        (f["info"] for f in info["features"].values() if f.get("dtype") == "video" and "info" in f), None
    )
    if recorded is None:
        return requested or VideoOptions()
    stored = VideoOptions.from_info(recorded)
    if requested is None:
        return stored
    diffs = [
        f"{name}: requested {getattr(requested, name)!r}, recorded {getattr(stored, name)!r}"
        for name in ("codec", "pix_fmt", "crf", "gop", "preset")
        if getattr(requested, name) != getattr(stored, name)
    ]
    if diffs:
        raise layout.VideoOptionsMismatchError(root, diffs)
    return requested


def load_state(root: Path, info: dict[str, Any]) -> dict[str, Any]:
    """Where a reopened dataset continues: the file after the last episode's, per stream."""
    import pyarrow.parquet as pq

    state: dict[str, Any] = {}
    if (root / layout.TASKS_PATH).exists():
        state["tasks"] = layout.read_tasks(root / layout.TASKS_PATH)
    if (root / layout.STATS_PATH).exists():
        state["stats"] = stats_from_json(json.loads((root / layout.STATS_PATH).read_text()))
    files = sorted((root / "meta/episodes").glob("*/*.parquet"))
    if not files:
        return state
    last = pq.read_table(files[-1]).to_pylist()[-1]
    size = int(info["chunks_size"])

    def after(prefix: str) -> tuple[int, int]:
        return layout.next_file(int(last[f"{prefix}chunk_index"]), int(last[f"{prefix}file_index"]), size)

    state["episodes_slot"] = after("meta/episodes/")
    state["data_slot"] = after("data/")
    state["video_slots"] = {
        k: after(f"videos/{k}/")
        for k in layout.video_keys(layout.normalize_features(info["features"], from_info=True))
        if f"videos/{k}/chunk_index" in last
    }
    return state
