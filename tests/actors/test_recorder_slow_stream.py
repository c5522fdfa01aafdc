"""A camera slower than the dataset's fps keeps the episode's duration, warns, marks (issue 16).

A 5 fps camera (the MuJoCo render rate on a small machine) recorded at fps 30 for 6 s used to be
stored as ~2 s: each grid tick between two frames found the camera stale and was skipped. Now
its latest frame is held (repeated) until the next one, the recorder warns once naming the
stream, its rate and the fps, and the episode is marked (``rtrun/slow_streams``).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import anyio
import pytest
import rtrun

pytest.importorskip("pyarrow.parquet")
pytest.importorskip("av")

from rtrun.actors._dataset_check import check_dataset

from .test_recorder import FPS, FakeCamera, command, episodes, recorder_graph, wait_for

SLOW_FPS = 5.0
RECORD_S = 6.0


def slow_camera_graph(root: Path) -> rtrun.GraphSpec:
    """arm (100 Hz) + one 5 fps camera + a recorder at fps 30."""
    spec = recorder_graph(root, cams=1)
    actors = tuple(
        rtrun.ActorSpec(id="cam0", kind=FakeCamera, params={"fps": SLOW_FPS}) if a.id == "cam0" else a
        for a in spec.actors
    )
    return rtrun.GraphSpec(name="slow-cam", actors=actors)


@pytest.mark.parametrize("anyio_backend", [pytest.param(("asyncio", {}), id="asyncio")])
async def test_slow_camera_keeps_duration_warns_and_marks(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="rtrun")
    root = tmp_path / "ds"
    async with rtrun.open_graph(slow_camera_graph(root)) as graph:
        await anyio.sleep(1.0)  # the camera's rate is known before the episode starts
        await command(graph, "start", "slow")
        await wait_for(graph, lambda s: s["state"] == "recording")
        started = time.monotonic()
        await anyio.sleep(RECORD_S)
        live = dict(graph.context("rec").status)
        await command(graph, "save")
        elapsed = time.monotonic() - started
        status = await wait_for(graph, lambda s: s["episodes"] == 1 and s["pending_saves"] == 0)
    assert check_dataset(root) == []
    [ep] = episodes(root)
    duration = ep["length"] / FPS
    assert abs(duration - elapsed) < 0.5, (duration, elapsed)  # ~6 s, not ~2 s
    key = "observation.images.cam0"
    slow = json.loads(ep["rtrun/slow_streams"])
    assert set(slow) == {key} and slow[key] == pytest.approx(SLOW_FPS, rel=0.1)
    assert ep["rtrun/repeated_frames"] >= 0.7 * ep["length"]  # ~5 of every 6 rows repeat a frame
    assert live["slow_streams"].keys() == {key} and live["repeated"][key] > 0
    assert status["last_episode"]["slow_streams"].keys() == {key}
    warnings = [
        r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "slower" in r.getMessage()
    ]
    assert len(warnings) == 1, warnings  # once per episode, not once per tick
    assert key in warnings[0] and "5.0 Hz" in warnings[0] and "30 fps" in warnings[0], warnings


def test_saved_line_warns_when_stale_streams_squeeze_the_episode() -> None:
    """Skipped ticks still shorten the stored timeline: above 5 % the saved line is a warning
    naming the stale streams."""
    from rtrun.actors._recorder_episode import saved_line

    base = {"index": 3, "dropped": 0, "slow_streams": {}, "save_s": 0.5}
    level, fmt, args = saved_line({**base, "frames": 90, "skipped": 10, "stale": {"observation.state": 10}})
    assert level == logging.WARNING and "observation.state" in fmt % args
    level, _, _ = saved_line({**base, "frames": 99, "skipped": 1, "stale": {"observation.state": 1}})
    assert level == logging.INFO
