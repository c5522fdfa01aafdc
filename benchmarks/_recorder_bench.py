"""Recorder encoding benchmark helper (issue 7): cameras at 30 fps through ``DatasetWriter``.

:func:`run_recorder_bench` records one episode of ``seconds`` from ``cameras`` synthetic
640×480 cameras plus 6 joints at ``fps``, calling ``add_frame`` on absolute deadlines from a
worker thread (as the recorder actor does through ``ctx.run_sync``), then saves it. It returns
``cpu_percent`` (whole process, % of one core, recording + save), ``dropped_frames`` (rows
refused because an encoder queue was full) and ``bytes_written`` (dataset size on disk). The
100 Hz control-loop jitter comparison is added around it by ``benchmarks/recorder.py``.

Frames are pre-generated (a moving gradient with a bouncing square and fixed noise) so the
benchmark measures the writer, not image synthesis; noise keeps the encoder honestly busy.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from rtrun.actors._dataset_video import VideoOptions
from rtrun.actors._dataset_writer import DatasetWriter

__all__ = ["run_recorder_bench"]

_DISTINCT_FRAMES = 60
"""Pre-generated frames per camera (2 s of motion at 30 fps, then it loops)."""


def _frames(n: int, width: int, height: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 24, size=(height, width, 3), dtype=np.uint8)
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    out = []
    for k in range(n):
        img = ((x + 4 * k) % 256).astype(np.uint8).repeat(height, axis=0).repeat(3, axis=2)
        top, left = (7 * k) % (height - 64), (11 * k) % (width - 64)
        img[top : top + 64, left : left + 64] = (255, 40, 40)
        img = img + noise
        img.flags.writeable = False
        out.append(img)
    return out


def _record(writer: DatasetWriter, seconds: float, fps: int, cams: dict[str, list[np.ndarray]]) -> None:
    writer.start_episode("benchmark")
    start = time.perf_counter()
    for k in range(round(seconds * fps)):
        delay = start + k / fps - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        row = {"observation.state": np.full(6, k, np.float32), "action": np.zeros(6, np.float32)}
        writer.add_frame(row, {key: frames[k % len(frames)] for key, frames in cams.items()})


def run_recorder_bench(
    seconds: float = 10.0,
    *,
    fps: int = 30,
    cameras: int = 2,
    width: int = 640,
    height: int = 480,
    video_options: VideoOptions | None = None,
    root: Path | None = None,
) -> dict[str, Any]:
    """Record one episode in a worker thread; return cpu_percent, dropped_frames, bytes_written."""
    import psutil

    keys = [f"observation.images.cam{i}" for i in range(cameras)]
    feats: dict[str, dict[str, Any]] = {
        "observation.state": {"dtype": "float32", "shape": [6]},
        "action": {"dtype": "float32", "shape": [6]},
        **{k: {"dtype": "video", "shape": [height, width, 3]} for k in keys},
    }
    cams = {k: _frames(_DISTINCT_FRAMES, width, height, seed=i) for i, k in enumerate(keys)}
    with tempfile.TemporaryDirectory(prefix="rtrun-recbench-") as tmp:
        ds_root = root or Path(tmp) / "ds"
        proc = psutil.Process()
        cpu0, wall0 = proc.cpu_times(), time.perf_counter()
        result: dict[str, Any] = {}
        with DatasetWriter.create(ds_root, fps=fps, features=feats, video_options=video_options) as w:
            worker = threading.Thread(target=_record, args=(w, seconds, fps, cams), name="rec-bench")
            worker.start()
            worker.join()
            t_save = time.perf_counter()
            summary = w.save_episode()
            result["save_episode_s"] = round(time.perf_counter() - t_save, 3)
        cpu1, wall = proc.cpu_times(), time.perf_counter() - wall0
        busy = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
        written = sum(p.stat().st_size for p in ds_root.rglob("*") if p.is_file())
        options = w.video_options
    return {
        "bench": "recorder",
        "seconds": seconds,
        "fps": fps,
        "cameras": cameras,
        "width": width,
        "height": height,
        "codec": options.codec,
        "preset": options.preset,
        "frames": summary.length,
        "dropped_frames": summary.dropped_frames,
        "cpu_percent": round(100.0 * busy / wall, 1),
        "bytes_written": written,
        **result,
    }


if __name__ == "__main__":  # quick manual run: python benchmarks/_recorder_bench.py
    import json

    print(json.dumps(run_recorder_bench()))
