"""SIGKILL mid-episode: earlier episodes stay readable, reopening discards the partial one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

pq = pytest.importorskip("pyarrow.parquet")
pytest.importorskip("av")

from rtrun.actors._dataset_check import check_dataset  # noqa: E402
from rtrun.actors._dataset_writer import DatasetWriter  # noqa: E402

CHILD = textwrap.dedent(
    """
    import sys, numpy as np
    from rtrun.actors._dataset_writer import DatasetWriter
    feats = {"observation.state": {"dtype": "float32", "shape": [2]},
             "observation.images.front": {"dtype": "video", "shape": [48, 64, 3]}}
    img = np.zeros((48, 64, 3), np.uint8)
    w = DatasetWriter.create(sys.argv[1], fps=30, features=feats)
    for e in range(2):
        w.start_episode("pick")
        for k in range(10):
            w.add_frame({"observation.state": [e, k]}, {"observation.images.front": img})
        w.save_episode()
    w.start_episode("pick")
    k = 0
    while True:  # recording forever until SIGKILL
        w.add_frame({"observation.state": [2, k]}, {"observation.images.front": img})
        k += 1
        if k == 20:
            print("RECORDING", flush=True)
    """
)


def kill_mid_episode(root: Path) -> None:
    """Run a writer in a subprocess and SIGKILL it (by PID) while episode 2 is recording."""
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, str(root)], stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "RECORDING"
            os.kill(proc.pid, signal.SIGKILL)
            assert proc.wait(timeout=30) == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)


@pytest.mark.slow
def test_sigkill_mid_episode_then_reopen(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    kill_mid_episode(root)
    # Before any recovery: the two saved episodes are complete on disk.
    problems = check_dataset(root)
    assert [p.rule for p in problems] == ["uncommitted"]
    rows = pq.read_table(sorted(root.glob("data/*/*.parquet"))).to_pydict()
    assert rows["episode_index"] == [0] * 10 + [1] * 10
    # Reopen: the partial episode is detected and discarded, recording continues.
    with DatasetWriter.open(root) as w:
        assert w.recovery.discarded_episode == 2 and w.recovery.rolled_forward_episode is None
        assert (w.total_episodes, w.total_frames) == (2, 20)
        w.start_episode("place")
        for k in range(5):
            w.add_frame({"observation.state": [9, k]}, {"observation.images.front": _img()})
        assert w.save_episode().episode_index == 2
    assert check_dataset(root) == []
    info = json.loads((root / "meta/info.json").read_text())
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (3, 25, 2)


def _img():
    import numpy as np

    return np.zeros((48, 64, 3), np.uint8)


@pytest.mark.slow
@pytest.mark.oracle
def test_lerobot_loads_saved_episodes_right_after_sigkill(tmp_path: Path) -> None:
    """No reopen, no finalize: LeRobot 0.4.4 reads the two saved episodes (test-oracles.md §3)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.modules.setdefault(
        "torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations")
    )
    lerobot = pytest.importorskip("lerobot.datasets.lerobot_dataset")
    root = tmp_path / "ds"
    kill_mid_episode(root)
    ds = lerobot.LeRobotDataset("local/rtrun", root=root)
    items = [ds[i] for i in range(len(ds))]  # decodes every video frame
    assert [int(x["episode_index"]) for x in items] == [0] * 10 + [1] * 10
    assert [x["observation.state"].tolist() for x in items][13] == [1.0, 3.0]
