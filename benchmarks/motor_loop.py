"""Benchmark: the motor_bus actor's control loop against a fake STS3215 bus over a real pty.

Setup: ``socat`` links two ptys; ``python -m rtrun.drivers.fake_sts3215`` serves six fake servos
on one end **in a subprocess** (so the fake costs this process nothing); the ``motor_bus`` actor
(real Feetech driver, sync read of 6 positions + sync write of goals every tick) opens the other.
A ``trajectory`` source commands the arm so every tick carries a write. Each configuration runs
for ``--duration`` seconds at 100 Hz and 500 Hz, ``idle`` and with ``cpu`` load: an actor in the
same process running numpy matrix products plus pure-Python work in its worker thread
(contending for the GIL, as image pre-processing or policy glue code would).

One JSON line per configuration::

    {"bench": "motor_loop", "rate_hz": 100, "load": "idle", "achieved_hz": 100.0,
     "jitter_p50_us": ..., "jitter_p99_us": ..., "jitter_max_us": ..., "missed": 0, ...}

``jitter`` is the cycle-to-cycle period error ``|Δt_read − 1/rate|`` of consecutive
``JointState.t_read`` stamps (the whole loop: wake-up, bus round trip, publish), over every tick
after a 0.5 s warm-up. ``missed`` counts ticker deadlines skipped (overruns). Extra fields report
the ticker's own wake-up lateness (p99) and the bus round trip time.

Usage: ``python benchmarks/motor_loop.py [--duration 5] [--rates 100,500] [--loop asyncio|uvloop]``
(needs socat and pyserial).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one BLAS thread: the load is one actor
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import json
import logging
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import rtrun
from rtrun.actors.motor_bus import MotorBusActor
from rtrun.actors.trajectory import TrajectoryActor

WARMUP_S = 0.5
"""Ticks in the first half second are excluded (connect, first allocations, caches)."""


class CpuBurner(rtrun.Actor):
    """Keeps its worker thread busy: numpy matrix products plus GIL-holding Python loops."""

    async def run(
        self, ctx: rtrun.ActorContext[Any], *, task_status: Any = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Burn CPU until cancelled."""
        a = np.random.default_rng(0).random((200, 200))
        task_status.started()
        rounds = 0
        while True:
            await ctx.run_sync(_burn, a)
            rounds += 1
            ctx.set_status(rounds=rounds)


def _burn(a: np.ndarray) -> float:
    for _ in range(4):
        a = a @ a.T
        a /= np.abs(a).max()
    return float(a.sum()) + sum(i * i for i in range(20_000))  # ~1 ms holding the GIL


@contextmanager
def fake_bus_process() -> Iterator[str]:
    """A socat pty pair with the fake STS3215 servos served by a subprocess; yields the driver's port."""
    if shutil.which("socat") is None:
        raise SystemExit("motor_loop: socat is not installed (apt-get install socat)")
    with tempfile.TemporaryDirectory(prefix="rtrun-bench-") as d:
        a, b = Path(d) / "ttyA", Path(d) / "ttyB"
        socat = subprocess.Popen(
            ["socat", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        fake = None
        try:
            deadline = time.monotonic() + 5
            while not (a.exists() and b.exists()):
                if time.monotonic() > deadline:
                    raise SystemExit("motor_loop: socat did not create the pty pair")
                time.sleep(0.01)
            fake = subprocess.Popen(
                [sys.executable, "-m", "rtrun.drivers.fake_sts3215", "--port", str(b)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert fake.stdout is not None
            if fake.stdout.readline().strip() != "ready":
                raise SystemExit("motor_loop: the fake bus did not start")
            yield str(a)
        finally:
            if fake is not None:
                fake.kill()
                fake.wait(timeout=5)
            socat.kill()
            socat.wait(timeout=5)


def graph_spec(port: str, rate_hz: float, load: str) -> rtrun.GraphSpec:
    """motor_bus (Feetech over the pty) fed by a trajectory, plus the CPU burner under load."""
    arm = {
        "driver": "feetech",
        "port": port,
        "rate_hz": rate_hz,
        "progress_interval_s": 0.0,
        "max_consecutive_errors": 10,  # a loaded shared machine may delay a reply past 50 ms
    }
    actors = [
        rtrun.ActorSpec(
            id="arm",
            kind=MotorBusActor,
            params=arm,
            inputs={"command": rtrun.InputSpec(name="command", source="tour/command")},
        ),
        rtrun.ActorSpec(
            id="tour",
            kind=TrajectoryActor,
            params={"rate_hz": rate_hz, "segment_s": 1.0, "progress_interval_s": 0.0},
            inputs={"state": rtrun.InputSpec(name="state", source="arm/state")},
        ),
    ]
    if load == "cpu":
        actors.append(rtrun.ActorSpec(id="burner", kind=CpuBurner))
    root = rtrun.SupervisorSpec(id="root", parent=None, intensity=10, period_s=5.0)
    return rtrun.GraphSpec(name="motor_loop", actors=tuple(actors), root=root)


async def measure(port: str, rate_hz: float, load: str, duration: float) -> dict[str, Any]:
    """Run one configuration and compute the JSON record."""
    async with rtrun.open_graph(graph_spec(port, rate_hz, load)) as graph:
        tap = graph.receiver("arm/state", capacity=int(rate_hz * (duration + 2)), policy="drop_oldest")
        await anyio.sleep(WARMUP_S)
        before = graph.context("arm").status
        t_end = anyio.current_time() + duration
        stamps: list[float] = []
        while anyio.current_time() < t_end:
            state = await tap.receive()
            if state.t_read >= t_end - duration:
                stamps.append(state.t_read)
        after = graph.context("arm").status
        burner = graph.context("burner").status.get("rounds", 0) if load == "cpu" else 0
        restarts = graph.status().restarts
    t = np.array(stamps)
    jitter = np.abs(np.diff(t) - 1.0 / rate_hz) * 1e6
    return {
        "bench": "motor_loop",
        "rate_hz": rate_hz,
        "load": load,
        "achieved_hz": round((len(t) - 1) / (t[-1] - t[0]), 2),
        "jitter_p50_us": round(float(np.percentile(jitter, 50)), 1),
        "jitter_p99_us": round(float(np.percentile(jitter, 99)), 1),
        "jitter_max_us": round(float(jitter.max()), 1),
        "missed": after["missed"] - before["missed"],
        "ticks": len(t),
        "wake_lateness_p99_us": after["lateness_p99_us"],
        "bus_errors": after["errors"],
        "restarts": restarts,
        "burner_rounds": burner,
        "duration_s": duration,
    }


def main(argv: list[str] | None = None) -> int:
    """Run every configuration and print one JSON line each."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rates", default="100,500")
    parser.add_argument("--loads", default="idle,cpu")
    parser.add_argument("--loop", default="asyncio", choices=["asyncio", "uvloop"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    options = {"use_uvloop": True} if args.loop == "uvloop" else {}
    with fake_bus_process() as port:
        for rate in (float(r) for r in args.rates.split(",")):
            for load in args.loads.split(","):
                record = anyio.run(
                    measure, port, rate, load, args.duration, backend="asyncio", backend_options=options
                )
                record["loop"] = args.loop
                print(json.dumps(record), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
