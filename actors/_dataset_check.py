"""Self-checks of a LeRobotDataset v3 folder that LeRobot's loader does not do.

LeRobot 0.4.4 accepts a wrong ``fps`` in ``info.json`` and a wrong ``dataset_to_index``, and
checks timestamps only while decoding video (dataset-v3.md §5). :func:`check_dataset` verifies
the rules of dataset-v3.md §4/§5.1 on any v3 folder (written by rtrun or not):

- ``totals``: ``total_frames/episodes/tasks`` and ``splits`` agree with the files;
- ``index``: the global ``index`` is 0..N-1 in file order;
- ``episode_bounds``: ``dataset_from_index``/``dataset_to_index`` are contiguous, match ``length``
  and the rows of the data file the episode names;
- ``frame_index`` / ``timestamp`` / ``episode_index`` / ``task_index``: per row, with or without
  video (``timestamp == frame_index / fps`` within ``tolerance_s``);
- ``video_stream``: every mp4 has the dataset fps, the declared size and pixel format;
- ``video_frames``: every mp4 holds exactly the frames its episodes claim, and each episode's
  ``from_timestamp``/``to_timestamp`` is its span on the fps grid;
- ``video_timestamps``: every frame's pts is on the ``k / fps`` grid;
- ``orphan_rows``: data rows that belong to no episode (the loader would serve them);
- ``uncommitted``: an rtrun writer died mid-episode (``.rtrun/episode``): reopen to recover.

Videos are probed with PyAV (demux only), so the check needs no ffprobe binary.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import _dataset_layout as layout
from ._dataset_commit import EPISODE_DIR, JOURNAL
from ._dataset_layout import DatasetError
from ._dataset_video import probe_video

__all__ = ["DatasetCheckError", "Problem", "check_dataset", "verify_dataset"]

TOLERANCE_S = 1e-4
"""LeRobot's ``tolerance_s`` default: decoded frames must be within 1e-4 s of their query."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """One broken rule."""

    rule: str
    """Stable rule id (see the module docstring)."""
    detail: str
    """What exactly is wrong, naming the file/episode/row."""

    def __str__(self) -> str:
        return f"[{self.rule}] {self.detail}"


class DatasetCheckError(DatasetError):
    """:func:`verify_dataset` found problems; ``problems`` lists them all."""

    def __init__(self, root: Path, problems: list[Problem]) -> None:
        self.root = root
        self.problems = tuple(problems)
        lines = "\n  - ".join(str(p) for p in problems)
        super().__init__(f"dataset {root} breaks {len(problems)} LeRobot v3 rule(s):\n  - {lines}")


def verify_dataset(root: str | Path, *, tolerance_s: float = TOLERANCE_S) -> None:
    """Raise :class:`DatasetCheckError` if :func:`check_dataset` finds anything."""
    problems = check_dataset(root, tolerance_s=tolerance_s)
    if problems:
        raise DatasetCheckError(Path(root), problems)


def check_dataset(root: str | Path, *, tolerance_s: float = TOLERANCE_S) -> list[Problem]:
    """Every rule broken by the dataset at ``root`` (empty list: consistent)."""
    import pyarrow.parquet as pq

    root = Path(root)
    try:
        info = json.loads((root / layout.INFO_PATH).read_text())
        if not isinstance(info["fps"], int) or info["fps"] <= 0:
            raise ValueError(f"fps {info['fps']!r} is not a positive int")
    except (OSError, ValueError, KeyError) as exc:
        return [Problem(rule="info", detail=f"cannot read {layout.INFO_PATH}: {exc}")]
    problems: list[Problem] = []
    if (root / EPISODE_DIR).exists() or (root / JOURNAL).exists():
        problems.append(
            Problem(
                rule="uncommitted",
                detail="a writer died mid-episode or mid-save; DatasetWriter.open() recovers it",
            )
        )
    ep_files = sorted((root / "meta/episodes").glob("*/*.parquet"))
    data_files = sorted((root / "data").glob("*/*.parquet"))
    episodes = pq.read_table(ep_files).to_pylist() if ep_files else []
    cols = ["timestamp", "frame_index", "episode_index", "index", "task_index"]
    tables = {p.relative_to(root).as_posix(): pq.read_table(p, columns=cols) for p in data_files}
    data = {
        c: np.concatenate([t.column(c).to_numpy() for t in tables.values()]) if tables else np.zeros(0)
        for c in cols
    }
    problems += _check_totals(root, info, episodes, len(data["index"]))
    problems += _check_rows(info, episodes, data, tables, tolerance_s)
    problems += _check_videos(root, info, episodes, tolerance_s)
    return problems


def _check_totals(
    root: Path, info: dict[str, Any], episodes: list[dict[str, Any]], rows: int
) -> list[Problem]:
    out = []
    n_tasks = len(layout.read_tasks(root / layout.TASKS_PATH)) if (root / layout.TASKS_PATH).exists() else 0
    for name, actual in (("total_frames", rows), ("total_episodes", len(episodes)), ("total_tasks", n_tasks)):
        if info.get(name) != actual:
            out.append(
                Problem(rule="totals", detail=f"info.json {name}={info.get(name)} but files hold {actual}")
            )
    expected_splits = {"train": f"0:{len(episodes)}"} if episodes else {}
    if info.get("splits") != expected_splits:
        out.append(Problem(rule="totals", detail=f"splits {info.get('splits')} != {expected_splits}"))
    if [e["episode_index"] for e in episodes] != list(range(len(episodes))):
        out.append(Problem(rule="episode_bounds", detail="episode_index values are not 0..E-1 in order"))
    return out


def _check_rows(
    info: dict[str, Any],
    episodes: list[dict[str, Any]],
    data: dict[str, np.ndarray],
    tables: dict[str, Any],
    tol: float,
) -> list[Problem]:
    out: list[Problem] = []
    fps, n = info["fps"], len(data["index"])
    if not np.array_equal(data["index"], np.arange(n)):
        out.append(Problem(rule="index", detail="global index is not 0..N-1 in file order"))
    start, total_tasks = 0, info.get("total_tasks", 0)
    for ep in episodes:
        e, length = ep["episode_index"], ep["length"]
        bounds = (ep["dataset_from_index"], ep["dataset_to_index"])
        if bounds != (start, start + length):
            out.append(
                Problem(
                    rule="episode_bounds",
                    detail=f"episode {e}: from/to {bounds} != {(start, start + length)}",
                )
            )
        rows = slice(start, start + length)
        k = np.arange(length)
        for rule, ok in (
            ("frame_index", np.array_equal(data["frame_index"][rows], k)),
            ("episode_index", bool(np.all(data["episode_index"][rows] == e))),
            (
                "timestamp",
                len(data["timestamp"][rows]) == length
                and bool(np.all(np.abs(data["timestamp"][rows] - k / fps) <= tol)),
            ),
            (
                "task_index",
                bool(np.all((data["task_index"][rows] >= 0) & (data["task_index"][rows] < total_tasks))),
            ),
        ):
            if not ok:
                out.append(
                    Problem(
                        rule=rule,
                        detail=f"episode {e} (rows {start}..{start + length - 1}) breaks the {rule} rule",
                    )
                )
        out += _check_data_file(ep, tables)
        start += length
    if start < n:
        out.append(Problem(rule="orphan_rows", detail=f"{n - start} data rows belong to no episode"))
    return out


def _check_data_file(ep: dict[str, Any], tables: dict[str, Any]) -> list[Problem]:
    rel = layout.DATA_PATH.format(chunk_index=ep["data/chunk_index"], file_index=ep["data/file_index"])
    table = tables.get(rel)
    if table is None:
        return [Problem(rule="episode_bounds", detail=f"episode {ep['episode_index']}: {rel} missing")]
    held = int(np.sum(table.column("episode_index").to_numpy() == ep["episode_index"]))
    if held != ep["length"]:
        return [
            Problem(
                rule="episode_bounds",
                detail=f"episode {ep['episode_index']}: {rel} holds {held} of its {ep['length']} rows",
            )
        ]
    return []


def _check_videos(
    root: Path, info: dict[str, Any], episodes: list[dict[str, Any]], tol: float
) -> list[Problem]:
    out: list[Problem] = []
    fps = info["fps"]
    for key in layout.video_keys(info["features"]):
        by_file: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for ep in episodes:
            rel = layout.VIDEO_PATH.format(
                video_key=key,
                chunk_index=ep[f"videos/{key}/chunk_index"],
                file_index=ep[f"videos/{key}/file_index"],
            )
            by_file[rel].append(ep)
        for rel, eps in by_file.items():
            out += _check_video_file(root / rel, rel, key, info["features"][key], fps, eps, tol)
    return out


def _check_video_file(
    path: Path, rel: str, key: str, feature: dict[str, Any], fps: int, eps: list[dict[str, Any]], tol: float
) -> list[Problem]:
    if not path.is_file():
        return [Problem(rule="video_frames", detail=f"{rel} is missing")]
    probe = probe_video(path)
    out = []
    height, width = feature["shape"][:2]
    expected_fmt = feature.get("info", {}).get("video.pix_fmt", "yuv420p")
    if (
        abs(probe.fps - fps) > 1e-6
        or (probe.height, probe.width) != (height, width)
        or probe.pix_fmt != expected_fmt
    ):
        out.append(
            Problem(
                rule="video_stream",
                detail=f"{rel}: {probe.width}x{probe.height} {probe.pix_fmt} "
                f"@ {probe.fps} fps, dataset declares {width}x{height} {expected_fmt} @ {fps}",
            )
        )
    frames = 0
    for ep in sorted(eps, key=lambda e: e[f"videos/{key}/from_timestamp"]):
        span = (ep[f"videos/{key}/from_timestamp"], ep[f"videos/{key}/to_timestamp"])
        want = (frames / fps, (frames + ep["length"]) / fps)
        if abs(span[0] - want[0]) > tol or abs(span[1] - want[1]) > tol:
            out.append(
                Problem(
                    rule="video_frames",
                    detail=f"episode {ep['episode_index']}: {key} span "
                    f"{span} != {want} (frames back to back at {fps} fps)",
                )
            )
        frames += ep["length"]
    if probe.frames != frames:
        out.append(
            Problem(rule="video_frames", detail=f"{rel}: {probe.frames} frames, episodes claim {frames}")
        )
    grid = np.arange(probe.frames) / fps
    if probe.frames and np.max(np.abs(np.asarray(probe.pts_s) - grid)) > tol:
        out.append(Problem(rule="video_timestamps", detail=f"{rel}: frame pts are off the 1/{fps} s grid"))
    return out
