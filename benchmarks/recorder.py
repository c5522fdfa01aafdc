"""Recorder benchmark (issue 7): does recording disturb a 100 Hz control loop in the same process?

    python benchmarks/recorder.py                 # 60 s of recording, JSON lines on stdout
    python benchmarks/recorder.py --seconds 10    # shorter

One graph in one process (asyncio, the production backend): two synthetic 640×480 cameras at
30 fps, a 6-joint arm publishing JointState and JointCommand at 30 Hz, and a 100 Hz control loop
(an ``rtrun.Ticker`` in ``auto`` mode, recording every tick's lateness). Three phases, each a
fresh graph:

1. ``baseline``  -- no recorder, ``seconds / 2``;
2. ``recording`` -- plus the ``recorder`` actor recording one episode for ``seconds``, then saving it;
3. ``baseline``  -- again, ``seconds / 2`` (A-B-A: the machine's background load drifts).

Output: one JSON line per phase, then the summary line ``"bench": "recorder"`` with
``cpu_percent`` (whole process during recording, % of one core), ``dropped_frames`` (rows the
recorder dropped: writer thread behind or encoder queue full), ``skipped_ticks`` (grid ticks
with a stale stream), ``bytes_written`` (dataset on disk), ``jitter_p99_ms`` with and without
recording, and ``jitter_change = p99(recording) / p99(baselines pooled) - 1``. Targets: 0 dropped
frames, ``jitter_change <= 0.10``. The 1-minute load average is reported because other work on
the machine dominates tail latency (see ``rtrun._clock``'s "Tail latency").

Frames are pre-generated (``_recorder_bench._frames``: moving gradient + square + fixed noise)
so the benchmark measures the recorder, not image synthesis.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import numpy as np
from anyio.abc import TaskStatus

sys.path.insert(0, str(Path(__file__).resolve().parent))
import rtrun
from _recorder_bench import _frames
from rtrun.actors.messages import EpisodeControl, Frame, JointCommand, JointState
from rtrun.actors.recorder import RecorderActor

JOINTS = (
    "shoulder_pan.pos",
    "shoulder_lift.pos",
    "elbow_flex.pos",
    "wrist_flex.pos",
    "wrist_roll.pos",
    "gripper.pos",
)
LATENESS_WINDOW = 200_000
"""Ticks kept by the control loop: 33 min at 100 Hz, more than any phase."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CamParams:
    """Parameters of :class:`BenchCamera`."""

    fps: float = 30.0
    """Frame rate."""
    width: int = 640
    """Image width."""
    height: int = 480
    """Image height."""
    seed: int = 0
    """Noise seed (cameras differ)."""


class BenchCamera(rtrun.Actor):
    """Publishes pre-generated frames at ``fps`` with their capture time."""

    outputs = {"frames": rtrun.Output(Frame)}
    Params = CamParams

    async def run(self, ctx: rtrun.ActorContext[CamParams], *, task_status: TaskStatus[None]) -> None:
        """Send frames until cancelled."""
        p = ctx.params
        frames = _frames(60, p.width, p.height, seed=p.seed)
        out = ctx.output("frames")
        task_status.started()
        async with rtrun.Ticker(p.fps) as ticker:
            async for tick in ticker:
                img = frames[tick.index % len(frames)]
                await out.send(
                    Frame(camera=ctx.id, seq=tick.index, t_capture=anyio.current_time(), image=img)
                )


class BenchArm(rtrun.Actor):
    """Publishes 6-joint JointState and JointCommand at 30 Hz."""

    outputs = {"state": rtrun.Output(JointState), "action": rtrun.Output(JointCommand)}

    async def run(self, ctx: rtrun.ActorContext[Any], *, task_status: TaskStatus[None]) -> None:
        """Send samples until cancelled."""
        task_status.started()
        async with rtrun.Ticker(30.0) as ticker:
            async for tick in ticker:
                pos = np.sin(np.arange(6, dtype=np.float32) + tick.index / 30).astype(np.float32)
                pos.flags.writeable = False
                t = anyio.current_time()
                await ctx.output("state").send(
                    JointState(names=JOINTS, position=pos, seq=tick.index, t_read=t)
                )
                cmd = JointCommand(names=JOINTS, position=pos, seq=tick.index, t_issued=t)
                await ctx.output("action").send(cmd)


@dataclass(frozen=True, slots=True, kw_only=True)
class LoopParams:
    """Parameters of :class:`ControlLoop`."""

    rate_hz: float = 100.0
    """Loop rate."""


class ControlLoop(rtrun.Actor):
    """A 100 Hz loop doing nothing but measuring its own wake-up lateness."""

    Params = LoopParams

    def __init__(self) -> None:
        self.lateness: deque[float] = deque(maxlen=LATENESS_WINDOW)

    async def run(self, ctx: rtrun.ActorContext[LoopParams], *, task_status: TaskStatus[None]) -> None:
        """Tick until cancelled; the lateness samples are read through ``LOOPS``."""
        LOOPS[ctx.id] = self
        task_status.started()
        async with rtrun.Ticker(ctx.params.rate_hz) as ticker:
            async for tick in ticker:
                self.lateness.append(tick.lateness_s)
                ctx.set_status(mode=ticker.mode, missed=ticker.statistics().missed)


LOOPS: dict[str, ControlLoop] = {}
"""The running control loop instance (the benchmark reads its samples directly)."""


def build(root: Path | None, args: argparse.Namespace) -> rtrun.GraphSpec:
    """The benchmark graph; with a recorder when ``root`` is given."""
    actors = [rtrun.ActorSpec(id="loop", kind=ControlLoop, params={"rate_hz": args.rate})]
    actors.append(rtrun.ActorSpec(id="arm", kind=BenchArm))
    cams = [f"cam{i}" for i in range(args.cameras)]
    for i, cam in enumerate(cams):
        params = {"fps": float(args.fps), "width": args.width, "height": args.height, "seed": i}
        actors.append(rtrun.ActorSpec(id=cam, kind=BenchCamera, params=params))
    if root is not None:
        latest = {"capacity": 1, "policy": "latest"}
        inputs = {
            "state": rtrun.InputSpec(name="state", source="arm/state", **latest),
            "action": rtrun.InputSpec(name="action", source="arm/action", **latest),
            **{c: rtrun.InputSpec(name=c, source=f"{c}/frames", **latest) for c in cams},
        }
        params = {
            "root": str(root),
            "fps": args.fps,
            "preset": args.preset,
        }
        params["codec"] = args.codec
        actors.append(
            rtrun.ActorSpec(
                id="rec", kind=RecorderActor, params=params, inputs=inputs, shutdown_timeout_s=120.0
            )
        )
    return rtrun.GraphSpec(name="bench_recorder", actors=tuple(actors))


async def phase(name: str, args: argparse.Namespace, seconds: float, root: Path | None) -> dict[str, Any]:
    """Run one phase; return its JSON record (and the lateness samples under ``_samples``)."""
    import psutil

    proc = psutil.Process()
    record: dict[str, Any] = {"phase": name, "seconds": seconds}
    async with rtrun.open_graph(build(root, args)) as graph:
        await anyio.sleep(1.0)  # warm-up: imports, first frames, encoder start
        loop = LOOPS["loop"]
        loop.lateness.clear()
        cpu0, t0 = proc.cpu_times(), time.perf_counter()
        if root is not None:
            with graph.sender("rec/control") as send:
                await send.send(EpisodeControl(command="start", task="benchmark"))
        await anyio.sleep(seconds)
        samples = np.array(loop.lateness)
        cpu1, wall = proc.cpu_times(), time.perf_counter() - t0
        record["cpu_percent"] = round(100 * ((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)) / wall, 1)
        if root is not None:
            with graph.sender("rec/control") as send:
                await send.send(EpisodeControl(command="save"))
            t_save = time.perf_counter()
            await _saved(graph)
            record["save_wait_s"] = round(time.perf_counter() - t_save, 2)
            status = dict(graph.context("rec").status)
            last = status["last_episode"]
            record.update(
                rows=last["frames"],
                dropped_frames=last["dropped"],  # writer thread behind + encoder queue full
                skipped_ticks=status["skipped_total"],
                rejected_samples=status["rejected_samples"],
            )
        record["ticker_mode"] = graph.context("loop").status.get("mode")
    record.update(_jitter(samples))
    if root is not None:
        record["bytes_written"] = _size(root)
    record["load1"] = round(os.getloadavg()[0], 2)
    record["_samples"] = samples
    return record


async def _saved(graph: rtrun.Graph) -> None:
    """Wait (polling the status: there is no event to wait on) until the episode is saved."""
    while True:
        if graph.context("rec").status.get("episodes", 0) >= 1:
            return
        await anyio.sleep(0.05)


def _size(root: Path) -> int:
    """Bytes of every file under ``root``."""
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def _jitter(samples: np.ndarray) -> dict[str, Any]:
    ms = samples * 1e3
    return {
        "ticks": int(samples.size),
        "jitter_p50_ms": round(float(np.percentile(ms, 50)), 3),
        "jitter_p99_ms": round(float(np.percentile(ms, 99)), 3),
        "jitter_max_ms": round(float(ms.max()), 3),
    }


async def main(args: argparse.Namespace) -> None:
    """Run A-B-A and print the JSON lines."""
    with tempfile.TemporaryDirectory(prefix="rtrun-bench-rec-") as tmp:
        a1 = await phase("baseline", args, args.seconds / 2, None)
        b = await phase("recording", args, args.seconds, Path(tmp) / "ds")
        a2 = await phase("baseline", args, args.seconds / 2, None)
    for rec in (a1, b, a2):
        print(json.dumps({"bench": "recorder.phase", **{k: v for k, v in rec.items() if k != "_samples"}}))
    base = _jitter(np.concatenate([a1["_samples"], a2["_samples"]]))
    summary = {
        "bench": "recorder",
        "seconds": args.seconds,
        "cameras": args.cameras,
        "width": args.width,
        "height": args.height,
        "fps": args.fps,
        "codec": args.codec,
        "preset": args.preset,
        "cpu_percent": b["cpu_percent"],
        "dropped_frames": b["dropped_frames"],
        "skipped_ticks": b["skipped_ticks"],
        "rows": b["rows"],
        "bytes_written": b["bytes_written"],
        "jitter_p99_ms_without": base["jitter_p99_ms"],
        "jitter_p99_ms_with": b["jitter_p99_ms"],
        "jitter_change": round(b["jitter_p99_ms"] / base["jitter_p99_ms"] - 1, 3),
        "load1": b["load1"],
        "cpu_count": os.cpu_count(),
    }
    print(json.dumps(summary))


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="recording duration (baselines: half each)"
    )
    parser.add_argument("--cameras", type=int, default=2)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--rate", type=float, default=100.0, help="control loop rate")
    parser.add_argument("--codec", default="libx264")
    parser.add_argument("--preset", default="veryfast")
    parser.add_argument(
        "--switch-interval", type=float, default=None, help="sys.setswitchinterval (GIL hand-off), seconds"
    )
    return parser.parse_args()


if __name__ == "__main__":
    _ARGS = _args()
    if _ARGS.switch_interval is not None:
        sys.setswitchinterval(_ARGS.switch_interval)
    anyio.run(main, _ARGS)
