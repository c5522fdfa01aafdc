"""RTC and control-jitter benchmarks (JSON lines on stdout).

``"bench": "rtc"`` — the policy path's cores (``ActionSource`` + ``RequestPlanner``, exactly what
the ``action_queue`` and ``rtc_merger`` actors run) on a virtual clock with a ``SleepPolicy``
ramp (chunk 50 at 30 fps, buffer 0.5 s) for each latency and RTC on/off: ``empty_ticks`` are
ticks without a policy action after the first chunk, ``max_jump`` the largest step between two
consecutive executed actions (1 = seamless ramp).

``"bench": "control_jitter"`` — a 100 Hz ``rtrun.Ticker`` loop (asyncio, real time) while the
built-in torch ACT policy infers continuously ``inproc`` (a worker thread of this process, as
the ``policy_worker`` actor does, torch threads = 1) or in a separate ``process``; ``none`` is
the idle baseline. ``jitter_p99_us`` is the 99th percentile of the tick lateness.

    python benchmarks/rtc.py [--duration-s 10] [--only rtc|control_jitter]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import rtrun
from rtrun.models._rtc_sim import simulate
from rtrun.models.rtc import PlannerConfig
from rtrun.models.testing_policies import SO101_ACTION_NAMES, SleepPolicy

LATENCIES_MS = (50, 150, 300, 600)
CHUNK = 50
FPS = 30.0


def bench_rtc(duration_s: float) -> list[dict[str, Any]]:
    """Empty ticks and max jump per latency, RTC on and off (virtual time, deterministic)."""
    rows = []
    for latency_ms in LATENCIES_MS:
        for rtc in (True, False):
            policy = SleepPolicy(latency_ms / 1e3, CHUNK, SO101_ACTION_NAMES, fps=FPS, sleep=None)
            cfg = PlannerConfig(fps=FPS, buffer_time_s=0.5, rtc_enabled=rtc)
            res = simulate(policy, duration_s=duration_s, planner=cfg)
            rows.append(
                {
                    "bench": "rtc",
                    "latency_ms": latency_ms,
                    "rtc": rtc,
                    "empty_ticks": res.starved_ticks,
                    "max_jump": res.max_jump,
                    "ticks": res.ticks,
                    "merges": res.planner.merges,
                    "duration_s": duration_s,
                }
            )
    return rows


# ------------------------------------------------------------------------------ jitter


_CHILD = """
import sys, numpy as np
from rtrun.models.checkpoint import load_policy
from rtrun.models.act import zero_observation
policy = load_policy(sys.argv[1], num_threads=1)
obs = zero_observation(policy.metadata)
print("ready", flush=True)
while True:
    policy.postprocessor(policy.predict_chunk(obs, inference_delay=0, prefix=None), observation=obs)
"""


async def _loop_100hz(duration_s: float) -> list[float]:
    late: list[float] = []
    async with rtrun.Ticker(100.0) as ticker:
        async for tick in ticker:
            late.append(tick.lateness_s)
            if len(late) >= duration_s * 100:
                return late[50:]  # drop the first 0.5 s (warm-up)
    return late


def _inproc_worker(checkpoint: Path, stop: threading.Event, count: list[int]) -> None:
    from rtrun.models.act import zero_observation
    from rtrun.models.checkpoint import load_policy

    policy = load_policy(checkpoint, num_threads=1)
    obs = zero_observation(policy.metadata)
    count.append(0)
    while not stop.is_set():
        policy.postprocessor(policy.predict_chunk(obs, inference_delay=0, prefix=None), observation=obs)
        count[0] += 1


def bench_jitter(duration_s: float, checkpoint: Path) -> list[dict[str, Any]]:
    """p99 lateness of a 100 Hz loop: idle, torch in a thread of this process, torch in a child."""
    rows = []
    for placement in ("none", "inproc", "process"):
        stop, count = threading.Event(), [0]
        thread = child = None
        if placement == "inproc":
            thread = threading.Thread(target=_inproc_worker, args=(checkpoint, stop, count), daemon=True)
            thread.start()
            while not count:
                time.sleep(0.05)
        elif placement == "process":
            child = subprocess.Popen(
                [sys.executable, "-c", _CHILD, str(checkpoint)], stdout=subprocess.PIPE, text=True
            )
            assert child.stdout is not None
            child.stdout.readline()  # "ready"
        try:
            late = np.array(anyio.run(_loop_100hz, duration_s)) * 1e6
        finally:
            stop.set()
            if thread is not None:
                thread.join(5.0)
            if child is not None:
                child.terminate()
                child.wait(5.0)
        rows.append(
            {
                "bench": "control_jitter",
                "placement": placement,
                "jitter_p50_us": round(float(np.percentile(late, 50)), 1),
                "jitter_p99_us": round(float(np.percentile(late, 99)), 1),
                "jitter_max_us": round(float(late.max()), 1),
                "ticks": int(late.size),
                "inferences_inproc": count[0] if placement == "inproc" else None,
            }
        )
    return rows


def main() -> None:
    """Run the benchmarks and print JSON lines."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration-s", type=float, default=10.0, help="real seconds per jitter run")
    ap.add_argument("--rtc-duration-s", type=float, default=600.0, help="virtual seconds per rtc run")
    ap.add_argument("--only", choices=("rtc", "control_jitter"))
    args = ap.parse_args()
    if args.only in (None, "rtc"):
        for row in bench_rtc(args.rtc_duration_s):
            print(json.dumps(row), flush=True)
    if args.only in (None, "control_jitter"):
        from rtrun.models.checkpoint import make_demo_checkpoint

        with tempfile.TemporaryDirectory() as tmp:
            ckpt = make_demo_checkpoint(Path(tmp) / "act", "act", cameras={"front": (96, 128)}, chunk_size=30)
            for row in bench_jitter(args.duration_s, ckpt):
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
