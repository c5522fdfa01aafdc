"""Third-party oracles: LeRobot 0.4.4's LeRobotDataset loads what DatasetWriter writes, every
frame decodes at its timestamp; ffprobe agrees on codec and frame counts (test-oracles.md §3, §5,
§11)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("pyarrow")
pytest.importorskip("av")

from rtrun.actors._dataset_check import check_dataset
from rtrun.actors._dataset_layout import arrow_schema
from rtrun.actors._dataset_stats import vector_stats
from rtrun.actors._dataset_writer import DatasetWriter

pytestmark = pytest.mark.oracle

FPS = 30
CAMS = ("observation.images.front", "observation.images.wrist")
FEATURES: dict[str, dict[str, Any]] = {
    "observation.state": {"dtype": "float32", "shape": [3], "names": ["a", "b", "c"]},
    "action": {"dtype": "float32", "shape": [3], "names": ["a", "b", "c"]},
    "capture_time": {"dtype": "float64", "shape": [2], "names": ["front", "wrist"]},
    **{c: {"dtype": "video", "shape": [48, 64, 3], "names": None} for c in CAMS},
}


@pytest.fixture(scope="module")
def lerobot() -> types.ModuleType:
    """Import LeRobot offline with the torchvision shim (test-oracles.md §3)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.modules.setdefault(
        "torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations")
    )
    return pytest.importorskip("lerobot.datasets.lerobot_dataset")


def image(e: int, k: int, cam: int) -> np.ndarray:
    img = np.zeros((48, 64, 3), np.uint8)
    img[..., 0] = 8 * k
    img[..., 1] = 40 * e + 20 * cam
    img[..., 2] = 200
    return img


def write(root: Path, lengths: list[int], *, start: int = 0) -> None:
    make = DatasetWriter.open if (root / "meta/info.json").exists() else None
    w = make(root) if make else DatasetWriter.create(root, fps=FPS, features=FEATURES, robot_type="sim")
    with w:
        for e, n in enumerate(lengths, start=start):
            w.start_episode(f"task {e % 2}")
            for k in range(n):
                row = {
                    "observation.state": [e, k, 0.5],
                    "action": [k, e, -1.0],
                    "capture_time": [k / FPS + 0.001, k / FPS + 0.002],
                }
                assert w.add_frame(row, {c: image(e, k, i) for i, c in enumerate(CAMS)})
            w.save_episode()


def load_every_frame(lerobot: types.ModuleType, root: Path) -> list[dict[str, Any]]:
    ds = lerobot.LeRobotDataset("local/rtrun", root=root, delta_timestamps={"action": [0.0, 1 / FPS]})
    return [ds[i] for i in range(len(ds))]  # decodes every frame; FrameTimestampError if off grid


def test_lerobot_loads_and_decodes_every_frame(lerobot: types.ModuleType, tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write(root, [20, 12])
    write(root, [9], start=2)  # resumed session: new data/video files
    items = load_every_frame(lerobot, root)
    assert len(items) == 41
    lengths = [20, 12, 9]
    i = 0
    for e, n in enumerate(lengths):
        for k in range(n):
            item = items[i]
            assert (int(item["episode_index"]), int(item["frame_index"])) == (e, k)
            assert float(item["timestamp"]) == pytest.approx(k / FPS, abs=1e-6)
            assert item["task"] == f"task {e % 2}"
            assert item["observation.state"].tolist() == [e, k, 0.5]
            assert bool(item["action_is_pad"][1]) == (k == n - 1)
            for c, cam in enumerate(CAMS):
                got = item[cam].numpy().transpose(1, 2, 0) * 255  # decoded frame, CHW [0, 1]
                assert np.abs(got - image(e, k, c)).mean() < 4, (e, k, cam)
            i += 1
    assert check_dataset(root) == []


def test_ffprobe_agrees_on_codec_and_frames(tmp_path: Path) -> None:
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        pytest.skip("ffprobe not installed (apt-get install ffmpeg)")
    root = tmp_path / "ds"
    write(root, [20, 20])
    for cam in CAMS:
        out = subprocess.run(
            [
                ffprobe,
                "-v",
                "error",
                "-count_frames",
                "-select_streams",
                "v:0",
                "-show_entries",
                "stream=codec_name,pix_fmt,width,height,avg_frame_rate,nb_read_frames",
                "-show_entries",
                "format=duration",
                "-of",
                "json",
                str(root / f"videos/{cam}/chunk-000/file-000.mp4"),
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        probe = json.loads(out)
        stream = probe["streams"][0]
        assert (stream["codec_name"], stream["pix_fmt"]) == ("h264", "yuv420p")
        assert (stream["width"], stream["height"], stream["avg_frame_rate"]) == (64, 48, "30/1")
        assert int(stream["nb_read_frames"]) == 40
        assert float(probe["format"]["duration"]) == pytest.approx(40 / FPS, abs=1e-3)


def test_schema_metadata_and_stats_match_lerobot(lerobot: types.ModuleType) -> None:
    from lerobot.datasets.compute_stats import get_feature_stats
    from lerobot.datasets.utils import get_hf_features_from_features

    feats = {k: {**v, "shape": tuple(v["shape"])} for k, v in FEATURES.items()}
    feats["flag"] = {"dtype": "bool", "shape": (1,), "names": None}
    hf = get_hf_features_from_features(feats)
    ours = json.loads(
        arrow_schema({k: {**v, "shape": list(v["shape"])} for k, v in feats.items()}).metadata[b"huggingface"]
    )
    assert ours == {"info": {"features": hf.to_dict()}}
    data = np.random.default_rng(0).normal(size=(50, 4))
    theirs = get_feature_stats(data, axis=0, keepdims=False)
    mine = vector_stats(data)
    # Quantiles are not compared: LeRobot estimates them from a 5000-bin running histogram
    # (off by up to 0.45 here); ours are exact (np.quantile).
    for key in ("min", "max", "mean", "std", "count"):
        np.testing.assert_allclose(mine[key], theirs[key])
