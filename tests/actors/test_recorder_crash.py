"""SIGKILL a running ``rtrun run`` with an auto-episode recorder mid-episode (issue 7).

Afterwards every saved episode loads (no finalize, no reopen needed); the next start of the
recorder detects the partial episode, discards it (or rolls a committed save forward if the
kill hit the publish step), reports it in its status and keeps recording.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import rtrun

pq = pytest.importorskip("pyarrow.parquet")
pytest.importorskip("av")

from rtrun.actors._dataset_check import check_dataset  # noqa: E402

from .test_recorder import command, wait_for  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
GRAPH = """
[graph]
name = "rec_crash"

[[actor]]
id = "arm"
kind = "tests.actors.test_recorder:FakeArm"

[[actor]]
id = "cam0"
kind = "tests.actors.test_recorder:FakeCamera"

[[actor]]
id = "rec"
kind = "rtrun.actors.recorder:RecorderActor"
shutdown_timeout_s = 30.0
params = {{ root = "{root}", fps = 30, auto_episode_s = 1.0, task = "crash" }}
inputs.state = "arm/state"
inputs.action = "arm/action"
inputs.cam0 = "cam0/frames"
inputs.control = {{ capacity = 8, policy = "drop_oldest" }}
"""
STARTUP_BUDGET_S = 60.0
"""Imports (numpy, pyarrow, PyAV) and two saved episodes on a loaded 2-core machine."""


def saved_episodes(root: Path) -> int:
    """``total_episodes`` from info.json (0 while it does not exist yet)."""
    try:
        return int(json.loads((root / "meta/info.json").read_text())["total_episodes"])
    except (OSError, ValueError, KeyError):
        return 0


def recording_after_two_saves(root: Path) -> bool:
    """True while the writer records the episode after >= 2 saved ones and no save is being
    published (a kill then hits the middle of an episode, the case this test is about)."""
    saved = saved_episodes(root)
    try:
        marker = json.loads((root / ".rtrun/episode/episode.json").read_text())
    except (OSError, ValueError):
        return False
    return saved >= 2 and marker.get("episode_index") == saved and not (root / ".rtrun/commit").exists()


def kill_mid_episode(tmp_path: Path) -> tuple[Path, Path]:
    """Run the graph with ``python -m rtrun run`` and SIGKILL it (by PID) while the recorder is
    recording the episode after two saved ones. Returns (graph file, dataset root)."""
    root = tmp_path / "ds"
    graph = tmp_path / "graph.toml"
    graph.write_text(GRAPH.format(root=root))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    cmd = [sys.executable, "-m", "rtrun", "run", str(graph), "--log-level", "warning", "--loop", "asyncio"]
    with subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as proc:
        try:
            deadline = time.monotonic() + STARTUP_BUDGET_S
            while not recording_after_two_saves(root):
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                assert time.monotonic() < deadline, "the recorder never saved two episodes"
                time.sleep(0.01)
            os.kill(proc.pid, signal.SIGKILL)
            assert proc.wait(timeout=30) == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
    return graph, root


@pytest.mark.slow
@pytest.mark.parametrize("anyio_backend", [pytest.param(("asyncio", {}), id="asyncio")])
async def test_sigkill_mid_episode_then_restart(tmp_path: Path) -> None:
    graph, root = kill_mid_episode(tmp_path)
    saved = saved_episodes(root)
    assert saved >= 2
    # Right after the kill: every saved episode is complete on disk; only the hidden staging
    # folder of the partial episode is left (no finalize was ever called).
    assert {p.rule for p in check_dataset(root)} <= {"uncommitted"}
    rows = pq.read_table(sorted(root.glob("data/*/*.parquet"))).to_pydict()
    assert sorted(set(rows["episode_index"])) == list(range(saved))
    # Next start (in-process, control-only): the partial episode is detected and handled.
    overrides = [("rec", "auto_episode_s", 0.0)]
    async with rtrun.open_graph(graph, overrides=overrides) as g:
        status = dict(g.context("rec").status)
        recovered = status["recovered"]
        assert recovered is not None, status
        if recovered["rolled_forward_episode"] is None:  # killed while recording (the usual case)
            assert recovered["discarded_episode"] == saved
        else:  # killed while publishing: the committed save was completed
            assert recovered["rolled_forward_episode"] == saved
            saved += 1
        assert status["episodes"] == saved and status["episode"] == saved
        await command(g, "start", "after the crash")
        await wait_for(g, lambda s: s["rows"] >= 5)
        await command(g, "save")
        await wait_for(g, lambda s: s["episodes"] == saved + 1)
    assert check_dataset(root) == []
    eps = pq.read_table(sorted(root.glob("meta/episodes/*/*.parquet"))).to_pylist()
    assert [e["episode_index"] for e in eps] == list(range(saved + 1))
    assert eps[-1]["tasks"] == ["after the crash"]


@pytest.mark.slow
@pytest.mark.oracle
def test_lerobot_loads_saved_episodes_after_sigkill(tmp_path: Path) -> None:
    """No reopen, no finalize: LeRobot 0.4.4 reads every episode saved before the kill."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.modules.setdefault(
        "torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations")
    )
    lerobot = pytest.importorskip("lerobot.datasets.lerobot_dataset")
    _, root = kill_mid_episode(tmp_path)
    saved = saved_episodes(root)
    ds = lerobot.LeRobotDataset("local/rtrun", root=root)
    items = [ds[i] for i in range(len(ds))]  # decodes every video frame
    assert sorted({int(x["episode_index"]) for x in items}) == list(range(saved))
    assert all(x["task"] == "crash" for x in items)
