"""DatasetWriter: layout, round trip, resume, refusals, drops, commit roll-forward (no LeRobot)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pq = pytest.importorskip("pyarrow.parquet")
pytest.importorskip("av")

from rtrun.actors import _dataset_commit, _dataset_video  # noqa: E402
from rtrun.actors._dataset_check import check_dataset  # noqa: E402
from rtrun.actors._dataset_layout import (  # noqa: E402
    DatasetError,
    DatasetLockedError,
    EpisodeStateError,
    FeatureMismatchError,
    FeatureSpecError,
    FrameError,
    VideoOptionsMismatchError,
)
from rtrun.actors._dataset_video import VideoOptions, probe_video  # noqa: E402
from rtrun.actors._dataset_writer import DatasetWriter  # noqa: E402

FPS = 30
H, W = 48, 64
CAM = "observation.images.front"
JOINTS = [f"j{i}.pos" for i in range(3)]


def features(*, cams: int = 1) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {
        "observation.state": {"dtype": "float32", "shape": [3], "names": JOINTS},
        "action": {"dtype": "float32", "shape": [3], "names": JOINTS},
        "intervention": {"dtype": "bool", "shape": [1], "names": None},
    }
    for c in range(cams):
        out[CAM if c == 0 else f"observation.images.cam{c}"] = {"dtype": "video", "shape": [H, W, 3]}
    return out


def frame(e: int, k: int, cams: tuple[str, ...] = (CAM,)) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    state = np.array([e, k, e * 100 + k], dtype=np.float32)
    img = np.zeros((H, W, 3), np.uint8)
    img[..., 0] = (k * 10) % 256
    img[..., 1] = e * 60
    img.flags.writeable = False
    return {"observation.state": state, "action": state + 0.5, "intervention": [k % 2 == 0]}, {
        c: img for c in cams
    }


def record(w: DatasetWriter, e: int, n: int, task: str = "pick") -> None:
    w.start_episode(task)
    for k in range(n):
        assert w.add_frame(*frame(e, k))
    w.save_episode()


def data_rows(root: Path) -> dict[str, list[Any]]:
    return pq.read_table(sorted(root.glob("data/*/*.parquet"))).to_pydict()


def test_layout_and_round_trip(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    with DatasetWriter.create(root, fps=FPS, features=features(), robot_type="so101_follower") as w:
        record(w, 0, 12)
        w.start_episode("pick")
        w.add_frame(*frame(1, 0))
        w.set_task("place")
        for k in range(1, 8):
            w.add_frame(*frame(1, k))
        summary = w.save_episode()
    assert (summary.episode_index, summary.length, summary.tasks) == (1, 8, ("pick", "place"))
    assert check_dataset(root) == []
    info = json.loads((root / "meta/info.json").read_text())
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (2, 20, 2)
    assert info["splits"] == {"train": "0:2"} and info["robot_type"] == "so101_follower"
    assert info["features"][CAM]["info"]["video.codec"] == "h264"
    schema = pq.read_schema(root / "data/chunk-000/file-000.parquet")
    state_type = schema.field("observation.state").type
    assert (state_type.list_size, str(state_type.value_type)) == (3, "float")
    assert str(schema.field("timestamp").type) == "float" and b"huggingface" in schema.metadata
    d = data_rows(root)
    assert d["index"] == list(range(20))
    assert d["frame_index"] == list(range(12)) + list(range(8))
    assert d["timestamp"] == pytest.approx([k / FPS for k in range(12)] + [k / FPS for k in range(8)])
    assert d["task_index"] == [0] * 13 + [1] * 7
    assert d["observation.state"][13] == [1.0, 1.0, 101.0] and d["intervention"][:2] == [True, False]
    eps = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [(e["dataset_from_index"], e["dataset_to_index"]) for e in eps] == [(0, 12), (12, 20)]
    assert eps[1][f"videos/{CAM}/from_timestamp"] == pytest.approx(12 / FPS)
    assert eps[1]["tasks"] == ["pick", "place"] and eps[1]["rtrun/dropped_frames"] == 0
    assert np.asarray(eps[0][f"stats/{CAM}/mean"]).shape == (3, 1, 1)
    stats = json.loads((root / "meta/stats.json").read_text())
    assert stats["observation.state"]["max"] == [1.0, 11.0, 107.0]
    assert stats["index"]["count"] == [20]
    probe = probe_video(root / f"videos/{CAM}/chunk-000/file-000.mp4")
    assert probe.frames == 20 and probe.pts_s == pytest.approx([k / FPS for k in range(20)], abs=1e-6)


def test_decoded_frames_are_the_recorded_images(tmp_path: Path) -> None:
    import av

    root = tmp_path / "ds"
    with DatasetWriter.create(root, fps=FPS, features=features()) as w:
        record(w, 0, 10)
        record(w, 3, 10)
    with av.open(str(root / f"videos/{CAM}/chunk-000/file-000.mp4")) as c:
        images = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(images) == 20
    for i, img in enumerate(images):
        e, k = divmod(i, 10)
        want = frame(3 * e, k)[1][CAM]
        assert np.abs(img.astype(int) - want).mean() < 4  # lossy codec, flat colours


def test_resume_appends_into_new_files(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    with DatasetWriter.create(root, fps=FPS, features=features()) as w:
        record(w, 0, 5)
    with DatasetWriter.open(root, features=features()) as w:
        assert w.recovery.clean and (w.total_episodes, w.total_frames) == (1, 5)
        record(w, 1, 6, task="place")
        record(w, 2, 4)
    assert check_dataset(root) == []
    eps = pq.read_table(sorted(root.glob("meta/episodes/*/*.parquet"))).to_pylist()
    assert [e["data/file_index"] for e in eps] == [0, 1, 1]
    assert [e[f"videos/{CAM}/file_index"] for e in eps] == [0, 1, 1]
    assert [e["tasks"] for e in eps] == [["pick"], ["place"], ["pick"]]
    assert data_rows(root)["task_index"] == [0] * 5 + [1] * 6 + [0] * 4


def test_feature_mismatch_is_refused_with_every_difference(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    with DatasetWriter.create(root, fps=FPS, features=features()) as w:
        record(w, 0, 3)
    other = features()
    other["action"] = {"dtype": "float64", "shape": [3], "names": JOINTS}
    del other["intervention"]
    other["observation.velocity"] = {"dtype": "float32", "shape": [3]}
    with pytest.raises(FeatureMismatchError) as info:
        DatasetWriter.open(root, features=other)
    diffs = "\n".join(info.value.differences)
    assert "'intervention' is in the dataset but not requested" in diffs
    assert "'observation.velocity' is requested but not in the dataset" in diffs
    assert "'action': dtype 'float64' requested, dataset has 'float32'" in diffs
    with DatasetWriter.open(root) as w:  # the refusal released the lock and changed nothing
        assert w.total_frames == 3


def test_video_options_mismatch_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    with DatasetWriter.create(root, fps=FPS, features=features(), video_options=VideoOptions(crf=28)) as w:
        record(w, 0, 3)
    with pytest.raises(VideoOptionsMismatchError, match="crf"):
        DatasetWriter.open(root, video_options=VideoOptions(crf=35))
    with DatasetWriter.open(root) as w:
        assert w.video_options.crf == 28


@pytest.mark.parametrize(
    ("spec", "rule"),
    [
        ({"timestamp": {"dtype": "float32", "shape": [1]}}, "filled by the writer"),
        ({"a/b": {"dtype": "float32", "shape": [1]}}, "no '/'"),
        ({"img": {"dtype": "image", "shape": [4, 4, 3]}}, "unsupported"),
        ({"cam": {"dtype": "video", "shape": [47, 64, 3]}}, "even"),
        ({"x": {"dtype": "float32", "shape": [2], "names": ["a"]}}, "1 names"),
        ({"x": {"dtype": "float32", "shape": [2, 2]}}, r"shape must be \[n\]"),
    ],
)
def test_invalid_features_are_refused(tmp_path: Path, spec: dict[str, Any], rule: str) -> None:
    with pytest.raises(FeatureSpecError, match=rule):
        DatasetWriter.create(tmp_path / "ds", fps=FPS, features=spec)


def test_state_and_frame_errors(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    with DatasetWriter.create(root, fps=FPS, features=features()) as w:
        with pytest.raises(EpisodeStateError, match="start_episode"):
            w.add_frame(*frame(0, 0))
        w.start_episode("pick")
        with pytest.raises(EpisodeStateError, match="still recording"):
            w.start_episode("pick")
        with pytest.raises(EpisodeStateError, match="no frames"):
            w.save_episode()
        row, images = frame(0, 0)
        with pytest.raises(FrameError, match="missing"):
            w.add_frame({"action": row["action"]}, images)
        with pytest.raises(FrameError, match="shape"):
            w.add_frame({**row, "action": [1.0, 2.0]}, images)
        with pytest.raises(FrameError, match="uint8"):
            w.add_frame(row, {CAM: np.zeros((H, W, 3), np.float32)})
        w.discard_episode()
        assert not (root / _dataset_commit.EPISODE_DIR).exists()
        with pytest.raises(DatasetLockedError):
            DatasetWriter.open(root)
    with pytest.raises(DatasetError, match="not empty"):
        DatasetWriter.create(root, fps=FPS, features=features())
    with pytest.raises(DatasetError, match="no dataset"):
        DatasetWriter.open(tmp_path / "missing")


def test_discard_and_close_leave_no_trace(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    w = DatasetWriter.create(root, fps=FPS, features=features())
    record(w, 0, 4)
    w.start_episode("pick")
    w.add_frame(*frame(1, 0))
    w.discard_episode()
    record(w, 1, 3)
    w.start_episode("pick")
    w.add_frame(*frame(2, 0))
    w.close()  # discards the unsaved episode
    w.close()
    assert check_dataset(root) == []
    assert data_rows(root)["episode_index"] == [0] * 4 + [1] * 3


def test_full_encoder_queue_drops_whole_rows_and_marks_episode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered, release = threading.Event(), threading.Event()
    real_encode = _dataset_video.VideoEncoder.encode

    def slow_encode(self: _dataset_video.VideoEncoder, image: np.ndarray) -> None:
        entered.set()
        assert release.wait(10)
        real_encode(self, image)

    monkeypatch.setattr(_dataset_video.VideoEncoder, "encode", slow_encode)
    root = tmp_path / "ds"
    with DatasetWriter.create(root, fps=FPS, features=features(), encoder_queue_size=1) as w:
        w.start_episode("pick")
        assert w.add_frame(*frame(0, 0))
        assert entered.wait(10)  # the encoder thread holds frame 0
        assert w.add_frame(*frame(0, 1))  # queued (capacity 1)
        assert not w.add_frame(*frame(0, 2))  # dropped
        assert not w.add_frame(*frame(0, 3))
        assert w.statistics().episode_dropped == 2 and w.statistics().queue_depths == {CAM: 1}
        release.set()
        summary = w.save_episode()
    assert (summary.length, summary.dropped_frames) == (2, 2)
    assert check_dataset(root) == []  # rows and video frames stay one-to-one
    ep = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()[0]
    assert ep["rtrun/dropped_frames"] == 2


def test_encoder_failure_fails_the_save_and_keeps_the_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "ds"
    with DatasetWriter.create(root, fps=FPS, features=features()) as w:
        record(w, 0, 3)

        def broken(self: _dataset_video.VideoEncoder, image: np.ndarray) -> None:
            raise RuntimeError("disk on fire")

        monkeypatch.setattr(_dataset_video.VideoEncoder, "encode", broken)
        w.start_episode("pick")
        w.add_frame(*frame(1, 0))
        with pytest.raises(DatasetError, match="disk on fire"):
            w.save_episode()
        monkeypatch.undo()
        record(w, 1, 2)
    assert check_dataset(root) == []
    assert json.loads((root / "meta/info.json").read_text())["total_episodes"] == 2


def test_crash_after_commit_point_rolls_forward(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "ds"
    real_apply = _dataset_commit._apply

    class Crash(Exception):
        pass

    def apply_first_move_then_die(root_: Path, moves: list[list[str]]) -> None:
        real_apply(root_, moves[:1])
        raise Crash

    with DatasetWriter.create(root, fps=FPS, features=features()) as w:
        record(w, 0, 4)
        monkeypatch.setattr(_dataset_commit, "_apply", apply_first_move_then_die)
        with pytest.raises(Crash):
            record(w, 1, 5)
        monkeypatch.undo()
        with pytest.raises(EpisodeStateError, match="reopen"):
            w.start_episode("pick")
    assert check_dataset(root)[0].rule == "uncommitted"
    with DatasetWriter.open(root) as w:
        assert w.recovery.rolled_forward_episode == 1 and w.total_frames == 9
        record(w, 2, 2)
    assert check_dataset(root) == []
    assert data_rows(root)["episode_index"] == [0] * 4 + [1] * 5 + [2] * 2


def test_two_cameras_and_file_rotation(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    cams = (CAM, "observation.images.cam1")
    with DatasetWriter.create(root, fps=FPS, features=features(cams=2)) as w:
        w._info["video_files_size_in_mb"] = 1e-6  # force a new mp4 per episode
        w._info["data_files_size_in_mb"] = 1e-6
        for e in range(3):
            w.start_episode("pick")
            for k in range(4):
                assert w.add_frame(*frame(e, k, cams))
            w.save_episode()
    assert check_dataset(root) == []
    eps = pq.read_table(sorted(root.glob("meta/episodes/*/*.parquet"))).to_pylist()
    assert [e["meta/episodes/file_index"] for e in eps] == [0, 1, 2]
    assert [e[f"videos/{cams[1]}/file_index"] for e in eps] == [0, 1, 2]
    assert [e[f"videos/{cams[1]}/from_timestamp"] for e in eps] == [0.0, 0.0, 0.0]
    assert [e["data/file_index"] for e in eps] == [0, 1, 2]
