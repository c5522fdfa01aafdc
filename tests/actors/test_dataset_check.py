"""Self-checks catch the corruptions LeRobot's loader accepts (dataset-v3.md §5, §5.1)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
pytest.importorskip("av")

from rtrun.actors._dataset_check import DatasetCheckError, check_dataset, verify_dataset  # noqa: E402
from rtrun.actors._dataset_writer import DatasetWriter  # noqa: E402

FPS = 30
CAM = "observation.images.front"
DATA = "data/chunk-000/file-000.parquet"
EPISODES = "meta/episodes/chunk-000/file-000.parquet"
VIDEO = f"videos/{CAM}/chunk-000/file-000.mp4"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small consistent dataset: 2 episodes × 10 frames, one camera."""
    root = tmp_path_factory.mktemp("check") / "ds"
    feats = {
        "observation.state": {"dtype": "float32", "shape": [2]},
        CAM: {"dtype": "video", "shape": [48, 64, 3]},
    }
    with DatasetWriter.create(root, fps=FPS, features=feats) as w:
        for e in range(2):
            w.start_episode("pick")
            for k in range(10):
                w.add_frame({"observation.state": [e, k]}, {CAM: np.full((48, 64, 3), k, np.uint8)})
            w.save_episode()
    return root


def edit_json(root: Path, rel: str, change: Callable[[dict[str, Any]], None]) -> None:
    data = json.loads((root / rel).read_text())
    change(data)
    (root / rel).write_text(json.dumps(data))


def edit_column(root: Path, rel: str, column: str, change: Callable[[np.ndarray], np.ndarray]) -> None:
    table = pq.read_table(root / rel)
    i = table.schema.get_field_index(column)
    values = change(table.column(column).to_numpy().copy())
    table = table.set_column(i, table.schema.field(i), pa.array(values, type=table.schema.field(i).type))
    pq.write_table(table, root / rel)


def _wrong_fps(root: Path) -> None:
    edit_json(root, "meta/info.json", lambda i: i.update(fps=25))


def _wrong_to_index(root: Path) -> None:
    edit_column(root, EPISODES, "dataset_to_index", lambda v: v + np.array([1, 0]))


def _half_frame_shift(root: Path) -> None:
    edit_column(root, DATA, "timestamp", lambda v: v + np.float32(0.5 / FPS))


def _wrong_total(root: Path) -> None:
    edit_json(root, "meta/info.json", lambda i: i.update(total_frames=21))


def _short_video(root: Path) -> None:
    from rtrun.actors._dataset_video import VideoEncoder, VideoOptions

    enc = VideoEncoder(root / VIDEO, fps=FPS, width=64, height=48, options=VideoOptions())
    for _ in range(15):
        enc.encode(np.zeros((48, 64, 3), np.uint8))
    enc.close()


def _orphan_rows(root: Path) -> None:
    table = pq.read_table(root / DATA).slice(0, 3)
    pq.write_table(table, root / "data/chunk-000/file-001.parquet")


def _missing_video(root: Path) -> None:
    (root / VIDEO).unlink()


def _bad_from_timestamp(root: Path) -> None:
    edit_column(root, EPISODES, f"videos/{CAM}/from_timestamp", lambda v: v + 0.5 / FPS)


def _partial_episode_left(root: Path) -> None:
    (root / ".rtrun/episode").mkdir(parents=True)


@pytest.mark.parametrize(
    ("corrupt", "rules"),
    [
        (_wrong_fps, {"timestamp", "video_stream", "video_frames", "video_timestamps"}),
        (_wrong_to_index, {"episode_bounds"}),
        (_half_frame_shift, {"timestamp"}),
        (_wrong_total, {"totals"}),
        (_short_video, {"video_frames"}),
        (_orphan_rows, {"index", "orphan_rows", "totals"}),
        (_missing_video, {"video_frames"}),
        (_bad_from_timestamp, {"video_frames"}),
        (_partial_episode_left, {"uncommitted"}),
    ],
)
def test_corruption_is_detected(
    pristine: Path, tmp_path: Path, corrupt: Callable[[Path], None], rules: set[str]
) -> None:
    root = tmp_path / "ds"
    shutil.copytree(pristine, root)
    assert check_dataset(root) == []
    corrupt(root)
    assert {p.rule for p in check_dataset(root)} == rules
    with pytest.raises(DatasetCheckError) as info:
        verify_dataset(root)
    assert {p.rule for p in info.value.problems} == rules and "LeRobot v3 rule" in str(info.value)


def test_not_a_dataset(tmp_path: Path) -> None:
    assert [p.rule for p in check_dataset(tmp_path)] == ["info"]
